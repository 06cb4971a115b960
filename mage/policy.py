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
             guidance: float | None = None):
    """Token maps [B, l_k] per scale (argmax, or ``tokens_given`` for teacher forcing), their logits
    [B, l_k, V], and f_hat [B, C, H] = sum_k Phi_k(scale_up(C[m_k])).

    ``guidance`` w (default the config's): classifier-free guidance, l = l(s_0) + w (l(s_0, R_0) - l(s_0)),
    the unconditional rows run as a second half of the batch that sees the same chosen tokens."""
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
        tok = lg.argmax(-1) if tokens_given is None else tokens_given[k]
        tokens.append(tok)
        logits.append(lg)
        f_hat = f_hat + q.phis[k](scale_up(q.codebook(tok).permute(0, 2, 1), q.horizon))
        if k + 1 < len(q.scales):
            inp = scale_down(f_hat, q.scales[k + 1]).permute(0, 2, 1)
    return tokens, logits, f_hat


@torch.no_grad()
def plan_actions(model: MageModel, s0_BS: torch.Tensor, R0_B1: torch.Tensor, steps: int) -> torch.Tensor:
    """Normalised actions [B, steps, act_dim] of one plan: a_0 by the configured head, a_{t>0}
    (only when replanning less often than every step) from the decoded window."""
    cfg, lay = model.cfg, model.layout
    cond = model.condition(s0_BS, R0_B1)
    _, _, f_hat = generate(model, cond)
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
