"""All MAGE networks in one module, built from a MageConfig and the data's dimensions."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from mage.config import MageConfig
from mage.critic import Critic
from mage.data import WindowLayout
from mage.generator import MultiScaleTransformer
from mage.inverse_dynamics import ExplicitInverseDynamics, LatentInverseDynamics
from mage.quantizer import MultiScaleQuantizer
from mage.tokenizer import Decoder, Encoder
from mage.value import ReturnHead, TDValue

HEAD_HIDDEN = 256  # not in paper: width of the inverse-dynamics / critic MLPs


class MageModel(nn.Module):
    def __init__(self, cfg: MageConfig, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        self.layout = WindowLayout.for_scheme(cfg.scheme, obs_dim, act_dim)
        cond_rtg = cfg.rtg_conditioned
        hidden = min(HEAD_HIDDEN, 4 * cfg.embed_dim)
        self.encoder = Encoder(self.layout.width, cfg.tokenizer_width, cfg.tokenizer_depth, cfg.codebook_dim,
                               cfg.horizon, use_rtg=cond_rtg)
        self.quantizer = MultiScaleQuantizer(cfg.codebook_size, cfg.codebook_dim, cfg.scales, cfg.vq_beta,
                                             cfg.phi_ratio, cfg.dead_code_threshold)
        self.decoder = Decoder(self.layout.width, cfg.tokenizer_width, cfg.tokenizer_depth, cfg.codebook_dim,
                               cfg.horizon, use_rtg=cond_rtg and cfg.rtg_in_decoder,
                               adapter_dim=cfg.adapter_dim if cfg.decoder_refinement == "adapter" else None,
                               adapter_cond_dim=obs_dim + 1 if cfg.adapter_condition and cfg.decoder_refinement == "adapter" else None)
        self.generator = MultiScaleTransformer(obs_dim + 1, cfg.codebook_dim, cfg.codebook_size, cfg.scales,
                                               cfg.embed_dim, cfg.num_blocks, cfg.num_heads, cfg.dropout,
                                               cfg.rtg_in_fine_scales, null_rtg=cfg.rtg_dropout > 0)
        self.latent_inverse = LatentInverseDynamics(cfg.codebook_dim, cfg.horizon, hidden, act_dim)
        # the explicit head also gives actions t > 0 of a plan when replan_every > 1
        self.explicit_inverse = ExplicitInverseDynamics(obs_dim, hidden, act_dim) if cfg.window_has_states else None
        self.critic = Critic(obs_dim, act_dim, hidden) if cfg.scheme == "a+cql" else None
        self.critic_target = copy.deepcopy(self.critic) if self.critic is not None else None
        self.return_head = ReturnHead(obs_dim, hidden) if cfg.target_rule == "value" else None
        self.td_value = TDValue(obs_dim, act_dim, hidden, cfg.td_activation) if cfg.needs_td_value else None

    @property
    def rtg_index(self) -> int | None:
        """Column of R_0 in the generator's condition [s_0, R_0] (None: no RTG conditioning)."""
        return self.obs_dim if self.cfg.rtg_conditioned else None

    def condition(self, s0_BS: torch.Tensor, R0_B1: torch.Tensor) -> torch.Tensor:
        """[B, obs_dim + 1]: (s_0, R_0), R_0 zeroed when the RTG is not a condition (Table 23)."""
        return torch.cat([s0_BS, R0_B1 if self.cfg.rtg_conditioned else torch.zeros_like(R0_B1)], dim=-1)

    @property
    def inverse_in_tokenizer(self) -> bool:
        """Whether stage 1 trains the latent inverse dynamics (and, through it, the encoder E)."""
        # whichever head acts: I(Z) is trained in stage 2 either way, and Z keeping a_0 helps the plan too
        return self.cfg.inverse_in_tokenizer and self.layout.actions is None

    def uses_adapters(self) -> bool:
        return self.cfg.decoder_refinement == "adapter"

    def plan_window(self, f_hat_BCH: torch.Tensor, s0_BS: torch.Tensor, R0_B1: torch.Tensor,
                    decoder: str | None = None) -> torch.Tensor:
        """The plan [B, H, F] of generated latents under ``decoder`` (default the config's plan_decoder):
        adapted = D'(Z, R_0) (adapters on under decoder_refinement "adapter", given the condition (s_0, R_0)
        under adapter_condition); base = D(Z, R_0); anchored = D(Z, R_0) with its states moved by
        s_0 - s_0_hat; switched = base where the return head's V(s_0) < cfg.switch_value, adapted where it is
        not (both decoded, rows chosen by torch.where: no data-dependent shapes). R_0 zeroed when it is not a
        condition."""
        decoder = decoder or self.cfg.plan_decoder
        if decoder == "switched":
            near_B11 = (self.return_head(s0_BS).float() >= self.cfg.switch_value)[:, :, None]
            return torch.where(near_B11, self.plan_window(f_hat_BCH, s0_BS, R0_B1, "adapted"),
                               self.plan_window(f_hat_BCH, s0_BS, R0_B1, "base"))
        R0 = R0_B1 if self.cfg.rtg_conditioned else torch.zeros_like(R0_B1)
        adapted = decoder == "adapted" and self.uses_adapters()
        x_BHF = self.decoder(f_hat_BCH, R0, use_adapters=adapted, cond_BD=self.condition(s0_BS, R0_B1))
        if decoder == "anchored" and self.layout.states is not None:
            cols = self.layout.states
            x_BHF = x_BHF.clone()
            x_BHF[:, :, cols] += s0_BS[:, None].to(x_BHF.dtype) - x_BHF[:, :1, cols]
        return x_BHF

    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        """Trainable parameters of stage 0 (IQL's V and twin Q, when a TD value is needed), stage 1
        (tokenizer) or stage 2 (generator, inverse dynamics, D' part)."""
        if stage == 0:
            return self.td_value.trainable_parameters() if self.td_value is not None else []
        if stage == 1:
            params = list(self.encoder.parameters()) + list(self.quantizer.parameters()) + self.decoder.base_parameters()
            return params + list(self.latent_inverse.parameters()) if self.inverse_in_tokenizer else params
        params = list(self.generator.parameters()) + list(self.latent_inverse.parameters())
        if self.explicit_inverse is not None:
            params += list(self.explicit_inverse.parameters())
        if self.cfg.decoder_refinement == "adapter":
            params += list(self.decoder.adapters.parameters())
        elif self.cfg.decoder_refinement == "direct":
            params += self.decoder.base_parameters()
        return params

    def set_stage(self, stage: int) -> None:
        """Freeze everything but ``stage``'s parameters (the critic and the ReturnHead V(s) have their own
        optimisers; V(s) trains in stages 1 and 2; the TD value only in stage 0, frozen after)."""
        trainable = {id(p) for p in self.stage_parameters(stage)}
        for p in self.parameters():
            p.requires_grad_(id(p) in trainable)
        if self.critic is not None and stage == 2:
            self.critic.requires_grad_(True)
        if self.return_head is not None and stage > 0:
            self.return_head.requires_grad_(True)
