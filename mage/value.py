"""V(s): an expectile of the data's return-to-go at a state, the acting target of target_rule "value".

not in paper: the paper conditions on a target R_0 but gives no values (a reviewer asked for them).
A fixed target ignores the start state: the best RTG of the data was seen near the goal, and from a
far start that (s_0, R_0) pair never occurs. V_tau(s) (tau near 1: the best return the data reached
from states like s, as IQL's value and Reinformer's return head estimate it) keeps R_t in the range the
generator was trained on, from every state. Trained beside stage 2 with its own optimiser, on s_0 and R_0
of the same batches; nothing else reads it, so it does not change what the other networks learn.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from mage.inverse_dynamics import mlp


class ReturnHead(nn.Module):
    """V(s_0): normalised state [B, obs_dim] -> normalised RTG [B, 1]."""

    def __init__(self, obs_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, 1)

    def forward(self, s0_BS: torch.Tensor) -> torch.Tensor:
        return self.net(s0_BS)


def expectile_loss(pred_B1: torch.Tensor, target_B1: torch.Tensor, tau: float) -> torch.Tensor:
    """IQL's asymmetric L2: |tau - 1(u < 0)| u^2 with u = target - pred, averaged."""
    u = target_B1 - pred_B1
    return (torch.abs(tau - (u < 0).float()) * u.pow(2)).mean()
