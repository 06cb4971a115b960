"""Decision Transformer (Chen et al., NeurIPS 2021): a causal GPT over (return-to-go, state,
action) tokens that predicts each action from the tokens up to its state.

Faithful to the paper with CORL's algorithms/offline/dt.py as reference: embedding 128, 3 pre-norm
blocks, 1 head, dropout 0.1, context 20 steps, learned timestep embedding, tanh action head, AdamW
(lr 8e-4, wd 1e-4) with linear warm-up over 10k steps, grad-norm clip 0.25, batch 4096 (antmaze:
64, lr 1e-4), 100k steps; undiscounted returns-to-go times ``reward_scale``; trajectories sampled
in proportion to their length, windows padded at the end and masked.
Why no library: d3rlpy (the maintained offline-RL library, which has DT) pins gymnasium==1.0.0,
which cannot be installed beside gymnasium-robotics 1.4.2 (needs gymnasium>=1.2); Hugging Face
transformers' DecisionTransformerModel carries no training or evaluation loop and would add a
large dependency for one small module; so this is one readable file.

Target return at evaluation: CORL gives an absolute target per dataset (maze2d 280, antmaze 1,
pen 3100, door 2900, hammer 12800, relocate 4300, halfcheetah 12000; mostly the D4RL expert
reference score). So that one config works for any dataset, the target is ``target_return`` when
set (absolute, raw reward units), else ``target_return_scale`` x the ``target_return_quantile``
quantile of the dataset's undiscounted episode returns (defaults: 1.0 x the best episode), as in
MAGE's config. baselines/configs/dt.yaml sets CORL's absolute values where they are one per suite.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import BaselineAgent, check_finite, check_ranges


@dataclass
class DTConfig:
    seq_len: int = 20                 # context K (steps)
    episode_len: int = 1000           # timestep-embedding size (CORL: + seq_len); longer episodes clamp
    embedding_dim: int = 128
    num_layers: int = 3
    num_heads: int = 1
    attention_dropout: float = 0.1
    residual_dropout: float = 0.1
    embedding_dropout: float = 0.1
    learning_rate: float = 8e-4
    weight_decay: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_steps: int = 10_000
    clip_grad: float = 0.25
    batch_size: int = 4096
    reward_scale: float = 1.0         # CORL: 0.001 on locomotion
    target_return: float | None = None  # absolute target (raw units); None: from the quantile below
    target_return_quantile: float = 1.0  # not in paper: dataset-relative stand-in for CORL's per-dataset constants
    target_return_scale: float = 1.0     # not in paper: multiplier on that quantile

    def __post_init__(self) -> None:
        check_ranges(self, positive=("seq_len", "episode_len", "embedding_dim", "num_layers", "num_heads",
                                     "learning_rate", "batch_size", "clip_grad", "warmup_steps"),
                     fractions=("attention_dropout", "residual_dropout", "embedding_dropout", "target_return_quantile"))
        if self.embedding_dim % self.num_heads:
            raise ValueError(f"embedding_dim {self.embedding_dim} is not divisible by num_heads {self.num_heads}")


class Block(nn.Module):
    """Pre-norm transformer block with causal self-attention (CORL TransformerBlock)."""

    def __init__(self, length: int, dim: int, heads: int, attn_drop: float, resid_drop: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(resid_drop)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=attn_drop, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), nn.Dropout(resid_drop))
        self.register_buffer("causal_mask", ~torch.tril(torch.ones(length, length)).bool(), persistent=False)

    def forward(self, x_BLD: torch.Tensor, pad_BL: torch.Tensor) -> torch.Tensor:
        L = x_BLD.shape[1]
        h = self.norm1(x_BLD)
        attn = self.attention(h, h, h, attn_mask=self.causal_mask[:L, :L], key_padding_mask=pad_BL, need_weights=False)[0]
        x_BLD = x_BLD + self.drop(attn)
        return x_BLD + self.mlp(self.norm2(x_BLD))


class DecisionTransformer(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, c: DTConfig) -> None:
        super().__init__()
        D = c.embedding_dim
        self.max_timestep = c.episode_len + c.seq_len - 1
        self.timestep_emb = nn.Embedding(c.episode_len + c.seq_len, D)
        self.state_emb, self.action_emb, self.return_emb = nn.Linear(obs_dim, D), nn.Linear(act_dim, D), nn.Linear(1, D)
        self.emb_norm, self.out_norm = nn.LayerNorm(D), nn.LayerNorm(D)
        self.emb_drop = nn.Dropout(c.embedding_dropout)
        self.blocks = nn.ModuleList(
            Block(3 * c.seq_len, D, c.num_heads, c.attention_dropout, c.residual_dropout) for _ in range(c.num_layers)
        )
        self.action_head = nn.Sequential(nn.Linear(D, act_dim), nn.Tanh())
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def forward(self, states_BKS: torch.Tensor, actions_BKA: torch.Tensor, rtg_BK: torch.Tensor,
                timesteps_BK: torch.Tensor, valid_BK: torch.Tensor) -> torch.Tensor:
        """Actions [B, K, A] in (−1, 1) predicted at every state token; ``valid_BK`` masks padding."""
        B, K = rtg_BK.shape
        t_emb = self.timestep_emb(timesteps_BK.clamp(0, self.max_timestep))
        tokens = torch.stack(
            [self.return_emb(rtg_BK.unsqueeze(-1)) + t_emb, self.state_emb(states_BKS) + t_emb,
             self.action_emb(actions_BKA) + t_emb], dim=2,
        ).reshape(B, 3 * K, -1)  # r_0, s_0, a_0, r_1, ...
        pad_BL = ~valid_BK.repeat_interleave(3, dim=1)
        x = self.emb_drop(self.emb_norm(tokens))
        for block in self.blocks:
            x = block(x, pad_BL)
        return self.action_head(self.out_norm(x)[:, 1::3])


def undiscounted_returns_to_go(rewards: np.ndarray, episode_starts: np.ndarray) -> np.ndarray:
    """[N] float64 Σ_{t'≥t} r_t' within each episode (vectorised reverse cumulative sum)."""
    cum = np.cumsum(rewards.astype(np.float64))
    ends = episode_starts[1:] - 1
    episode_of = np.repeat(np.arange(len(ends)), np.diff(episode_starts))
    return cum[ends][episode_of] - cum + rewards


class DTAgent(BaselineAgent):
    """DT agent (Agent protocol, harness/agent.py): keeps a rolling K-step context and a decreasing
    target return for each of the B parallel episodes."""

    METHOD = "dt"
    CONFIG = DTConfig
    OBS_STD_EPS = 1e-6  # CORL dt.py compute_mean_std
    PROFILES = {
        "smoke": {"steps": 200, "embedding_dim": 32, "num_layers": 1, "seq_len": 10, "batch_size": 32,
                  "warmup_steps": 20},
        "quick": {"steps": 5_000, "batch_size": 128, "warmup_steps": 500},  # not in CORL: minutes on CPU
        "paper": {"steps": 100_000},  # CORL update_steps
    }

    def __init__(self, seed: int = 0, device: str = "cpu") -> None:
        super().__init__(seed, device)
        self.target_return: float | None = None  # raw reward units; fixed from the data at the first fit

    def _build_networks(self) -> None:
        c = self.config
        self.model = DecisionTransformer(self.obs_dim, self.act_dim, c).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=c.learning_rate,
                                           weight_decay=c.weight_decay, betas=(c.beta1, c.beta2))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: min((s + 1) / c.warmup_steps, 1.0))

    def _dataset_target_return(self, data: Any) -> float:
        c = self.config
        if c.target_return is not None:
            return float(c.target_return)
        returns = data.episode_returns()
        return float(c.target_return_scale * np.quantile(returns, c.target_return_quantile)) if len(returns) else 0.0

    def _attach_data(self, data: Any) -> None:
        if self.target_return is None:
            self.target_return = self._dataset_target_return(data)
        dev = self.device
        lengths = np.diff(data.episode_starts)
        self.ep_start = torch.as_tensor(data.episode_starts[:-1], device=dev)
        self.ep_len = torch.as_tensor(lengths, device=dev)
        self.ep_prob = torch.as_tensor(lengths / lengths.sum(), dtype=torch.float64)
        self.states = self.normaliser.obs(torch.as_tensor(data.observations, dtype=torch.float32, device=dev))
        self.actions = self.normaliser.to_unit_action(torch.as_tensor(data.actions, dtype=torch.float32, device=dev))
        rtg = undiscounted_returns_to_go(data.rewards, data.episode_starts) * self.config.reward_scale
        self.rtg = torch.as_tensor(rtg, dtype=torch.float32, device=dev)

    def sample_windows(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """States [B, K, S], actions [B, K, A], RTG [B, K], timesteps [B, K], valid [B, K]: windows
        starting at a uniform step of an episode drawn in proportion to its length (CORL)."""
        K = self.config.seq_len
        episode = torch.multinomial(self.ep_prob, batch_size, replacement=True).to(self.device)
        length = self.ep_len[episode]
        start = (torch.rand(batch_size).to(self.device) * length).long()
        t_BK = start[:, None] + torch.arange(K, device=self.device)
        valid = t_BK < length[:, None]
        rows = self.ep_start[episode][:, None] + torch.minimum(t_BK, length[:, None] - 1)
        zero = valid.unsqueeze(-1)
        return (self.states[rows] * zero, self.actions[rows] * zero, self.rtg[rows] * valid,
                t_BK * valid, valid)

    def _train_step(self, step: int) -> dict[str, float]:
        states, actions, rtg, timesteps, valid = self.sample_windows(self.config.batch_size)
        self.model.train()
        predicted = self.model(states, actions, rtg, timesteps, valid)
        loss = (F.mse_loss(predicted, actions.detach(), reduction="none") * valid.unsqueeze(-1)).mean()
        metrics = check_finite(step, loss=loss)
        self.optimizer.zero_grad()
        loss.backward()
        if self.config.clip_grad is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_grad)
        self.optimizer.step()
        self.scheduler.step()
        return metrics

    # -- per-episode context ---------------------------------------------------------------
    def reset(self, num_envs: int) -> None:
        """Empty context windows and full target returns for ``num_envs`` new episodes."""
        super().reset(num_envs)
        B, K, dev = int(num_envs), self.config.seq_len, self.device
        self.ctx_states = torch.zeros(B, K, self.obs_dim, device=dev)
        self.ctx_actions = torch.zeros(B, K, self.act_dim, device=dev)
        self.ctx_rtg = torch.zeros(B, K, device=dev)
        self.ctx_timesteps = torch.zeros(B, K, dtype=torch.long, device=dev)
        self.ctx_count = torch.zeros(B, dtype=torch.long, device=dev)    # filled context slots
        self.episode_t = torch.zeros(B, dtype=torch.long, device=dev)    # env steps so far
        self.return_left = torch.full((B,), self.target_return * self.config.reward_scale, device=dev)

    def _act_unit(self, obs_BD: torch.Tensor) -> torch.Tensor:
        if getattr(self, "ctx_count", None) is None or len(self.ctx_count) != len(obs_BD):
            raise RuntimeError(f"DTAgent.act got {len(obs_BD)} observations; call reset({len(obs_BD)}) first")
        K = self.config.seq_len
        full = self.ctx_count == K
        if full.any():  # drop the oldest step of full windows
            for buf in (self.ctx_states, self.ctx_actions, self.ctx_rtg, self.ctx_timesteps):
                buf[full] = buf[full].roll(-1, dims=1)
        pos = torch.where(full, K - 1, self.ctx_count)
        rows = torch.arange(len(pos), device=self.device)
        self.ctx_states[rows, pos] = obs_BD
        self.ctx_actions[rows, pos] = 0.0  # not yet chosen; causally invisible to this state token
        self.ctx_rtg[rows, pos] = self.return_left
        self.ctx_timesteps[rows, pos] = self.episode_t
        self.ctx_count = torch.minimum(self.ctx_count + 1, torch.tensor(K, device=self.device))
        valid = torch.arange(K, device=self.device)[None, :] < self.ctx_count[:, None]
        self.model.eval()
        predicted = self.model(self.ctx_states, self.ctx_actions, self.ctx_rtg, self.ctx_timesteps, valid)
        action = predicted[rows, pos]
        self.ctx_actions[rows, pos] = action
        return action

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Lower each episode's return-to-go by its reward; restart the context of finished ones."""
        r = torch.as_tensor(np.asarray(rewards, dtype=np.float32), device=self.device)
        self.return_left -= r * self.config.reward_scale
        self.episode_t += 1
        done = torch.as_tensor(np.asarray(dones, dtype=bool), device=self.device)
        if done.any():
            self.ctx_count[done] = 0
            self.episode_t[done] = 0
            self.return_left[done] = self.target_return * self.config.reward_scale

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "target_return": self.target_return}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.target_return = float(state["target_return"])

    def _components(self) -> dict[str, Any]:
        return {"model": self.model, "optimizer": self.optimizer, "scheduler": self.scheduler}
