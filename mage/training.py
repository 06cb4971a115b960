"""The two training stages' losses (one optimisation step's worth each).

Stage 1 (tokenizer, MTAE): reconstruction MSE + VQ loss [+ lambda_inv L_inv through the straight-through
f_hat, so that Z keeps a_0: config inverse_in_tokenizer], with dead-code restarts.
Stage 2 (Alg. 5): L_CE (eq. 5) + lambda_cond L_cond (eq. 7, Gumbel-softmax straight-through into the
adapter decoder D') + lambda_inv L_inv (eq. 6) [+ A+CQL's actor term]. generator_inputs "teacher"
(default): the transformer runs once, teacher-forced from the ground-truth tokens (as VAR trains), and
the straight-through one-hots of all scales are decoded together; "sampled": Alg. 5's loop, scale by
scale, each scale's input built from the model's own straight-through Gumbel samples of the coarser ones.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from mage.critic import cql_loss
from mage.model import MageModel
from mage.quantizer import scale_down

EXP_ADV_MAX = 100.0  # IQL's (and CORL's) clip on exp(beta A)


def sample_weights(model: MageModel, batch: dict, rtg_min: float, rtg_max: float) -> torch.Tensor | None:
    """Table 23's reweighting: w = (R_0 - min) / (max - min) in [0, 1]; None when not reweighting."""
    if model.cfg.rtg_mode != "reweight":
        return None
    return ((batch["R0"][:, 0] - rtg_min) / max(rtg_max - rtg_min, 1e-6)).clamp(0, 1)


def advantage_weights(model: MageModel, batch: dict, value_scale: float) -> torch.Tensor | None:
    """IQL's AWR weights [B] = min(exp(beta (Q(s_0, a_0) - V(s_0))), 100) from the stage-0 value, the advantage
    in reward units (the value's unit times ``value_scale``); None when advantage_beta is 0."""
    beta = model.cfg.advantage_beta
    if beta == 0:
        return None
    with torch.no_grad():
        s0, a0 = batch["s0"], batch["a0"]
        adv_B = (model.td_value.q(s0, a0) - model.td_value(s0)[:, 0]).float() * value_scale
        return torch.exp(beta * adv_B).clamp(max=EXP_ADV_MAX)


def weighted_mean(per_sample_B: torch.Tensor, w_B: torch.Tensor | None) -> torch.Tensor:
    if w_B is None:
        return per_sample_B.mean()
    return (per_sample_B * w_B).sum() / w_B.sum().clamp_min(1e-6)


def decoder_rtg(model: MageModel, batch: dict) -> torch.Tensor:
    return batch["R0"] if model.cfg.rtg_conditioned else torch.zeros_like(batch["R0"])


def tokenizer_losses(model: MageModel, batch: dict, weights: torch.Tensor | None):
    """Returns (total loss, metrics, encoder features [B*H, C] for dead-code restarts)."""
    x = batch["window"]
    R0 = decoder_rtg(model, batch)
    f = model.encoder(x, R0)
    f_hat, _, vq, stats = model.quantizer(f)
    x_hat = model.decoder(f_hat, R0)
    recon = weighted_mean((x_hat.float() - x).pow(2).mean(dim=(1, 2)), weights)
    loss = recon + vq
    metrics = {"loss/recon": recon, "loss/vq": vq, "codebook/usage": stats["usage"],
               "codebook/perplexity": stats["perplexity"]}
    if model.inverse_in_tokenizer:  # f_hat is straight-through: L_inv reaches the encoder
        inv = weighted_mean((model.latent_inverse(f_hat) - batch["a0"]).pow(2).mean(1), weights)
        loss = loss + model.cfg.lambda_inv * inv
        metrics["loss/inv"] = inv
    return loss, metrics, f.detach().float().transpose(1, 2).reshape(-1, f.shape[1])


@torch.no_grad()
def ground_truth_tokens(model: MageModel, batch: dict) -> list[torch.Tensor]:
    f = model.encoder(batch["window"], decoder_rtg(model, batch))
    return model.quantizer(f)[1]


def generator_losses(model: MageModel, batch: dict, weights: torch.Tensor | None, gumbel_gen_tau: float):
    """Returns (total loss, metrics dict of tensors). ``batch["adv_weight"]`` [B] (advantage_beta): further
    weights of L_CE and L_cond, the terms that shape the plan's distribution."""
    cfg, q = model.cfg, model.quantizer
    plan_weights = weights
    if "adv_weight" in batch:
        plan_weights = batch["adv_weight"] if weights is None else weights * batch["adv_weight"]
    tokens = ground_truth_tokens(model, batch)
    with torch.no_grad():
        f_hat_gt = torch.stack(q.tokens_to_scale_features(tokens)).sum(0)
        tf_in = q.teacher_forcing_inputs(tokens)
    cond = model.condition(batch["s0"], batch["R0"])
    drop = batch.get("rtg_drop")    # rtg_dropout: rows generated without R_0 (classifier-free guidance)
    onehots = None
    if cfg.generator_inputs == "sampled":
        logits_BLV, onehots = sampled_generation(model, cond, gumbel_gen_tau, drop)
    else:
        logits_BLV = model.generator(cond, tf_in, model.rtg_index, rtg_drop_B=drop).float()
    target_BL = torch.cat(tokens, dim=1)
    ce_BL = F.cross_entropy(logits_BLV.transpose(1, 2), target_BL, reduction="none")
    if cfg.ce_weighting == "scale":
        ce_B = torch.stack([c.mean(1) for c in torch.split(ce_BL, list(cfg.scales), dim=1)], dim=1).mean(1)
    else:
        ce_B = ce_BL.mean(1)
    ce = weighted_mean(ce_B, plan_weights)
    metrics = {"loss/ce": ce}
    loss = ce

    if cfg.inverse_input == "generated":   # I reads the Z of the greedy tokens, as it does while acting
        with torch.no_grad():
            greedy = list(torch.split(logits_BLV.argmax(-1), list(cfg.scales), dim=1))
            f_hat_gt = torch.stack(q.tokens_to_scale_features(greedy)).sum(0)
    a_latent = model.latent_inverse(f_hat_gt)
    inv_B = (a_latent - batch["a0"]).pow(2).mean(1)
    if model.explicit_inverse is not None:
        inv_B = inv_B + (model.explicit_inverse(batch["s0"], batch["s1"]) - batch["a0"]).pow(2).mean(1)
    inv = weighted_mean(inv_B, weights)
    loss = loss + cfg.lambda_inv * inv
    metrics["loss/inv"] = inv

    lay = model.layout
    cond_cols = []
    if lay.states is not None:
        cond_cols += list(range(lay.states.start, lay.states.stop))
    if lay.rtg is not None and cfg.rtg_in_cond_loss and cfg.rtg_conditioned:
        cond_cols.append(lay.rtg)
    need_decode = (cfg.decoder_refinement != "none" and cond_cols) or model.critic is not None
    if need_decode:
        x_hat = decode_sampled(model, logits_BLV, batch["s0"], batch["R0"], gumbel_gen_tau, onehots)
        if cfg.decoder_refinement != "none" and cond_cols:
            cols = torch.tensor(cond_cols, device=x_hat.device)
            steps = slice(None) if cfg.cond_span == "window" else slice(0, 1)
            cond_B = (x_hat[:, steps][..., cols] - batch["window"][:, steps][..., cols]).pow(2).mean((1, 2))
            if drop is not None:   # a plan drawn without R_0 cannot be held to it
                cond_B = cond_B * (~drop).to(cond_B.dtype)
            l_cond = weighted_mean(cond_B, plan_weights)
            if "R0_relabel" in batch and cfg.rtg_conditioned:   # cond_relabel: under any target, start at s_0
                R0_new = batch["R0_relabel"]
                logits_new = model.generator(model.condition(batch["s0"], R0_new), tf_in, model.rtg_index).float()
                x_new = decode_sampled(model, logits_new, batch["s0"], R0_new, gumbel_gen_tau)
                target = batch["window"][:, 0].clone()
                if lay.rtg is not None:
                    target[:, lay.rtg] = R0_new[:, 0]
                relabelled = weighted_mean((x_new[:, 0, cols] - target[:, cols]).pow(2).mean(1), weights)
                metrics["loss/cond_relabel"] = relabelled
                l_cond = l_cond + relabelled
            loss = loss + cfg.lambda_cond * l_cond
            metrics["loss/cond"] = l_cond
        if model.critic is not None:
            a_hat = x_hat[:, 0, lay.actions].clamp(-1, 1)
            frozen = {k: v.detach() for k, v in model.critic.named_parameters()}
            q_hat = functional_call(model.critic, frozen, (batch["s0"], a_hat))
            actor = -(q_hat.mean() / q_hat.abs().mean().detach().clamp_min(1e-6))
            loss = loss + cfg.cql_actor_weight * actor
            metrics["loss/actor"] = actor
    return loss, metrics


def sampled_generation(model: MageModel, cond_BD: torch.Tensor, tau: float,
                       rtg_drop_B: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Alg. 5, l.7-22: scale by scale, logits of scale k from (s_0, R_0) and the model's own straight-through
    Gumbel samples of scales < k. Returns logits [B, L, V] and the per-scale one-hots [B, l_k, V]."""
    q, gen = model.quantizer, model.generator
    B = cond_BD.shape[0]
    f_hat = cond_BD.new_zeros(B, q.dim, q.horizon)
    inputs, logits, onehots = [], [], []
    for k, length in enumerate(q.scales):
        tf_in = torch.cat(inputs, dim=1) if inputs else cond_BD.new_zeros(B, 0, q.dim)
        lg = gen(cond_BD, tf_in, model.rtg_index, num_scales=k + 1, rtg_drop_B=rtg_drop_B)[:, gen.starts[k]:].float()
        y = F.gumbel_softmax(lg, tau=tau, hard=True)
        f_hat = f_hat + q.soft_to_scale_features([y], first_scale=k)[0]
        if k + 1 < len(q.scales):
            inputs.append(scale_down(f_hat, q.scales[k + 1]).permute(0, 2, 1))
        logits.append(lg)
        onehots.append(y)
    return torch.cat(logits, dim=1), onehots


def decode_sampled(model: MageModel, logits_BLV: torch.Tensor, s0_BS: torch.Tensor, R0_B1: torch.Tensor, tau: float,
                   onehots: list[torch.Tensor] | None = None) -> torch.Tensor:
    """D'(Z, R_0) [B, H, F] of Gumbel-softmax straight-through samples of every scale's logits (Alg. 5, l.14-24);
    ``onehots`` given (the sampled loop drew them already): those samples."""
    if onehots is None:
        y_BLV = F.gumbel_softmax(logits_BLV, tau=tau, hard=True)
        onehots = list(torch.split(y_BLV, list(model.cfg.scales), dim=1))
    Z = torch.stack(model.quantizer.soft_to_scale_features(onehots)).sum(0)
    return model.plan_window(Z, s0_BS, R0_B1, decoder="adapted").float()   # L_cond trains D' whichever decoder acts


def critic_loss(model: MageModel, batch: dict, generator: torch.Generator) -> torch.Tensor:
    return cql_loss(model.critic, model.critic_target, batch, model.cfg.discount, model.cfg.cql_alpha, generator)
