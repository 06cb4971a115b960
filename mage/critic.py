"""The critic of the A+CQL scheme (Table 6): Q(s, a) trained by SARSA TD with the CQL(H) penalty.

The paper names the scheme "actions with CQL regularisation" and gives no detail. Our reading:
the generator models action windows (scheme A) and is additionally pushed, through the
Gumbel-softmax path, toward decoded first actions a_0_hat that a conservative critic rates high:
L_actor = -Q(s_0, a_0_hat) / mean|Q| (TD3+BC-style scale). The critic is trained on dataset pairs:
TD to r + gamma * Q_target(s_1, a_1) with the dataset's next action (no policy maximisation, so the
critic stays in-distribution) plus CQL(H)'s alpha * (logsumexp_a Q(s, a_uniform) - Q(s, a_data)),
which pushes Q down on out-of-distribution actions.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from mage.inverse_dynamics import mlp

CQL_RANDOM_ACTIONS = 10  # not in paper: CQL's default number of uniform action samples


class Critic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int, activation: str = "gelu") -> None:
        super().__init__()
        self.net = mlp(obs_dim + act_dim, hidden, 1, activation)

    def forward(self, s_BS: torch.Tensor, a_BA: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([s_BS, a_BA], dim=-1)).squeeze(-1)


def cql_loss(critic: Critic, target: Critic, batch: dict, gamma: float, alpha: float,
             generator: torch.Generator) -> torch.Tensor:
    """SARSA TD error + CQL(H) penalty on a batch of normalised (s_0, a_0, r_0, s_1, a_1, done_0)."""
    s, a = batch["s0"], batch["a0"]
    with torch.no_grad():
        y = batch["r0"] + gamma * (1 - batch["done0"]) * target(batch["s1"], batch["a1"])
    q = critic(s, a)
    B, A = a.shape
    rand = torch.rand(B * CQL_RANDOM_ACTIONS, A, generator=generator).to(a.device) * 2 - 1
    q_rand = critic(s.repeat_interleave(CQL_RANDOM_ACTIONS, 0), rand).view(B, CQL_RANDOM_ACTIONS)
    penalty = torch.logsumexp(q_rand, dim=1).mean() - q.mean()
    return (q - y).pow(2).mean() + alpha * penalty


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float = 0.005) -> None:
    for t, s in zip(target.parameters(), source.parameters()):
        t.lerp_(s, tau)
