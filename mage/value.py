"""V(s): the acting target of target_rule "value" (an expectile of the data's return-to-go at a state,
``ReturnHead``) and "td" (IQL's expectile value, learnt by TD from the data's transitions, ``TDValue``).

not in paper: the paper conditions on a target R_0 but gives no values (a reviewer asked for them).
A fixed target ignores the start state: the best RTG of the data was seen near the goal, and from a
far start that (s_0, R_0) pair never occurs. V_tau(s) (tau near 1: the best return the data reached
from states like s, as IQL's value and Reinformer's return head estimate it) keeps R_t in the range the
generator was trained on, from every state. Trained beside stage 2 with its own optimiser, on s_0 and R_0
of the same batches; nothing else reads it, so it does not change what the other networks learn.

Why TD as well (measured on maze2d, bench/README.md "MAGE diagnostics"): the data never stay at the goal
(the controller picks a new target on arrival), so the data's RTG at a slow state at the goal is low
("about to leave"). IQL's V, learnt by TD over the same transitions, stitches the noisy actions that
happened to keep the ball near the goal and values staying (up to 1 / (1 - gamma) per unit reward).
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

from mage.critic import Critic, soft_update
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


class TDValue(nn.Module):
    """IQL's value: V(s) [B, 1] by expectile regression on min of twin target Q(s, a); Q by TD to r + gamma V(s').

    Works in normalised RTG units (rewards divided by the RTG scale), like ReturnHead. ``activation``: of V and
    both Q (MageConfig.td_activation; IQL's MLPs use ReLU)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: int, activation: str = "gelu") -> None:
        super().__init__()
        self.v = mlp(obs_dim, hidden, 1, activation)
        self.q1, self.q2 = Critic(obs_dim, act_dim, hidden, activation), Critic(obs_dim, act_dim, hidden, activation)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        for target in (self.q1_target, self.q2_target):
            target.requires_grad_(False)

    def forward(self, s0_BS: torch.Tensor) -> torch.Tensor:
        return self.v(s0_BS)

    def q(self, s_BS: torch.Tensor, a_BA: torch.Tensor) -> torch.Tensor:
        """min of the twin Q(s, a) [B] (IQL's pessimistic Q), normalised RTG units."""
        return torch.minimum(self.q1(s_BS, a_BA), self.q2(s_BS, a_BA))

    def loss(self, batch: dict, gamma: float, tau: float, reward_scale: float) -> torch.Tensor:
        """L_V + L_Q on normalised (s_0, a_0, r_0, s_1, done_0, has_next_0) of a batch; rows without a
        successor in the data (a cut, or the data's end) are left out of L_Q."""
        s, a = batch["s0"], batch["a0"]
        with torch.no_grad():
            q_target = torch.minimum(self.q1_target(s, a), self.q2_target(s, a))[:, None]
            y = batch["r0"] / reward_scale + gamma * (1 - batch["done0"]) * self.v(batch["s1"])[:, 0]
        loss_v = expectile_loss(self.v(s), q_target, tau)
        keep = batch["has_next0"]
        td = (self.q1(s, a) - y).pow(2) + (self.q2(s, a) - y).pow(2)
        loss_q = (td * keep).sum() / keep.sum().clamp_min(1.0)
        return loss_v + loss_q

    def trainable_parameters(self) -> list[nn.Parameter]:
        """V and the twin Q (the Polyak targets follow them)."""
        return [*self.v.parameters(), *self.q1.parameters(), *self.q2.parameters()]

    def update_targets(self) -> None:
        soft_update(self.q1_target, self.q1)
        soft_update(self.q2_target, self.q2)
