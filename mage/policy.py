"""Acting: generate token maps scale by scale with the KV cache, greedily (paper l.472), then act.

Shapes are static for a given batch size B (the cache is preallocated), so a later CUDA-graph or
torch.compile wrapper can capture ``generate``.
"""
from __future__ import annotations

import torch

from mage.model import MageModel
from mage.quantizer import scale_down, scale_up


@torch.no_grad()
def generate(model: MageModel, cond_BD: torch.Tensor, tokens_given: list[torch.Tensor] | None = None,
             guidance: float | None = None, sample: bool = False, temperature: float = 1.0):
    """Token maps [B, l_k] per scale (argmax, or ``tokens_given`` for teacher forcing), their logits
    [B, l_k, V], and f_hat [B, C, H] = sum_k Phi_k(scale_up(C[m_k])).

    ``guidance`` w (default the config's): classifier-free guidance, l = l(s_0) + w (l(s_0, R_0) - l(s_0)),
    the unconditional rows run as a second half of the batch that sees the same chosen tokens.
    ``sample``: tokens drawn from softmax(l / ``temperature``) (torch's global RNG) instead of the argmax."""
    gen, q = model.generator, model.quantizer
    w = model.cfg.guidance if guidance is None else guidance
    B = cond_BD.shape[0]
    guided = w != 1.0
    drop = None
    if guided:
        cond_BD = torch.cat([cond_BD, cond_BD])
        drop = torch.arange(2 * B, device=cond_BD.device) >= B
    dtype = next(gen.parameters()).dtype
    gen.allocate_cache(cond_BD.shape[0], cond_BD.device, dtype)
    f_hat = torch.zeros(B, q.dim, q.horizon, device=cond_BD.device)
    inp = None
    tokens, logits = [], []
    for k in range(len(q.scales)):
        lg = gen.scale_logits(k, cond_BD, None if inp is None else (torch.cat([inp, inp]) if guided else inp),
                              model.rtg_index, drop)
        if guided:
            lg = lg[B:] + w * (lg[:B] - lg[B:])
        if tokens_given is not None:
            tok = tokens_given[k]
        elif sample:   # Gumbel-max: a draw from softmax(l / T)
            tok = (lg.float() / temperature - torch.empty_like(lg, dtype=torch.float).exponential_().log()).argmax(-1)
        else:
            tok = lg.argmax(-1)
        tokens.append(tok)
        logits.append(lg)
        f_hat = f_hat + q.phis[k](scale_up(q.codebook(tok).permute(0, 2, 1), q.horizon))
        if k + 1 < len(q.scales):
            inp = scale_down(f_hat, q.scales[k + 1]).permute(0, 2, 1)
    return tokens, logits, f_hat


@torch.no_grad()
def plan_actions(model: MageModel, s0_BS: torch.Tensor, R0_B1: torch.Tensor, steps: int,
                 sample: bool = False, value_scale: float = 1.0) -> torch.Tensor:
    """Normalised actions [B, steps, act_dim] of one plan: a_0 by the configured head, a_{t>0}
    (only when replanning less often than every step) from the decoded window. ``sample``: the plan's
    tokens are drawn (torch's global RNG) instead of the argmax, the stall escape's plan. ``value_scale``:
    reward units per unit of the stage-0 value (Normalizer.value_scale), read by plan_rank q_mean only."""
    cfg, lay = model.cfg, model.layout
    if cfg.plan_samples > 1 and not sample:
        return sampled_plan_actions(model, s0_BS, R0_B1, steps, value_scale)
    cond = model.condition(s0_BS, R0_B1)
    _, _, f_hat = generate(model, cond, sample=sample)
    need_window = lay.actions is not None or cfg.inverse_dynamics == "explicit" or steps > 1
    x_hat = None
    if need_window:
        x_hat = model.plan_window(f_hat, s0_BS, R0_B1).float()
    if lay.actions is not None:  # schemes a, a+cql, rsa: the decoded window holds the actions
        return x_hat[:, :steps, lay.actions].clamp(-1, 1)
    states = x_hat[:, :, lay.states] if x_hat is not None else None
    acts = []
    for t in range(steps):
        if t == 0 and cfg.inverse_dynamics == "latent":
            acts.append(model.latent_inverse(f_hat.float()))
        else:
            start = s0_BS if t == 0 and cfg.explicit_from == "observed" else states[:, t]
            acts.append(model.explicit_inverse(start, states[:, t + 1]))
    return torch.stack(acts, dim=1)


@torch.no_grad()
def candidate_plans(model: MageModel, s0_BS: torch.Tensor, R0_B1: torch.Tensor,
                    n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n plans per episode, the greedy one and n - 1 drawn token by token (at cfg.plan_temperature): the decoded windows
    x_hat [n * B, H, F] (candidate k of episode b at row k * B + b) and the explicit head's first action of
    each [n * B, act_dim] (from the observed s_0 when cfg.explicit_from is "observed")."""
    s0, R0 = s0_BS.repeat(n, 1), R0_B1.repeat(n, 1)
    _, _, greedy = generate(model, model.condition(s0_BS, R0_B1))
    _, _, drawn = generate(model, model.condition(s0[len(s0_BS):], R0[len(s0_BS):]), sample=True,
                           temperature=model.cfg.plan_temperature)
    x_hat = model.plan_window(torch.cat([greedy, drawn]), s0, R0).float()
    states = x_hat[:, :, model.layout.states]
    first = model.explicit_inverse(s0 if model.cfg.explicit_from == "observed" else states[:, 0], states[:, 1])
    return x_hat, first


def q_mean_weights(q_NB: torch.Tensor, beta: float, value_scale: float) -> torch.Tensor:
    """[N, B] plan_rank q_mean's weights of N candidates per state: softmax over the candidates of beta * Q,
    Q [N, B] in stage-0 value units, times ``value_scale`` to reward units (IQL's exp(beta A), normalised)."""
    return torch.softmax(beta * value_scale * q_NB.float(), dim=0)


@torch.no_grad()
def sampled_plan_actions(model: MageModel, s0_BS: torch.Tensor, R0_B1: torch.Tensor, steps: int,
                         value_scale: float = 1.0) -> torch.Tensor:
    """plan_actions over cfg.plan_samples candidate_plans per episode, ranked (cfg.plan_rank) by the stage-0
    value V(s_hat) of the plan's last state, its mean over the plan's states, the stage-0 Q(s_0, a_0) of the
    plan's first action (IDQL's selection of behaviour samples by Q) or the plan's own decoded R at step 0
    (TAP ranks its sampled plans by value too); the winner's actions [B, steps, act_dim].

    q_mean does not pick one: a_0 = sum_i w_i a_0^i with w = softmax_i(plan_beta * Q(s_0, a_0^i)), Q in reward
    units (``value_scale``), i.e. IQL's advantage weights exp(beta (Q - V)) over the candidates, since V(s_0) is
    the same for all of them; the later actions (replan_every > 1) are those of the highest-weighted plan."""
    cfg = model.cfg
    B, N = s0_BS.shape[0], cfg.plan_samples
    x_hat, first = candidate_plans(model, s0_BS, R0_B1, N)
    states = x_hat[:, :, model.layout.states]                            # [N * B, H, S]
    if cfg.plan_rank == "return":
        score = x_hat[:, 0, model.layout.rtg]
    elif cfg.plan_rank == "mean_value":
        score = model.td_value(states.flatten(0, 1)).view(N * B, -1).mean(1)
    elif cfg.plan_rank in ("q", "q_mean"):
        score = model.td_value.q(s0_BS.repeat(N, 1), first)
    else:
        score = model.td_value(states[:, -1])[:, 0]
    best = score.view(N, B).argmax(0) * B + torch.arange(B, device=s0_BS.device)     # [B] rows of the winners
    if cfg.plan_rank == "q_mean":
        w_NB = q_mean_weights(score.view(N, B), cfg.plan_beta, value_scale)
        a0 = (w_NB[..., None] * first.view(N, B, -1).float()).sum(0)  # [B, act_dim]
    else:
        a0 = first[best]
    states = states[best]
    acts = [a0]
    for t in range(1, steps):
        acts.append(model.explicit_inverse(states[:, t], states[:, t + 1]))
    return torch.stack(acts, dim=1)
