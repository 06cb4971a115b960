"""Action heads: latent inverse dynamics a_0 = I(sum_k z_k) (eq. 6) and the explicit one I(s_0, s_1) (Table 19)."""
from __future__ import annotations

import torch
import torch.nn as nn


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


def mlp(inp: int, hidden: int, out: int, activation: str = "gelu") -> nn.Sequential:
    act = ACTIVATIONS[activation]
    return nn.Sequential(nn.Linear(inp, hidden), act(), nn.Linear(hidden, hidden), act(), nn.Linear(hidden, out))


class LatentInverseDynamics(nn.Module):
    """I(Z): f_hat [B, C, H] (the summed, up-scaled scale latents) -> normalised action [B, act_dim] in [-1, 1]."""

    def __init__(self, code_dim: int, horizon: int, hidden: int, act_dim: int) -> None:
        super().__init__()
        self.net = mlp(code_dim * horizon, hidden, act_dim)

    def forward(self, f_BCH: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(f_BCH.flatten(1)))


class ExplicitInverseDynamics(nn.Module):
    """I(s_t, s_{t+1}) on normalised (decoded) states -> normalised action [B, act_dim] in [-1, 1]."""

    def __init__(self, obs_dim: int, hidden: int, act_dim: int) -> None:
        super().__init__()
        self.net = mlp(2 * obs_dim, hidden, act_dim)

    def forward(self, s0_BS: torch.Tensor, s1_BS: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(torch.cat([s0_BS, s1_BS], dim=-1)))
