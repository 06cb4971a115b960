"""Implicit Q-Learning (Kostrikov et al., ICLR 2022): expectile regression of V on twin-Q targets,
Q regressed on r + γ V(s'), policy extracted by advantage-weighted regression.

Faithful to the paper with CORL's algorithms/offline/iql.py as reference: 2x256 MLPs, twin Q with
a Polyak target (τ = 0.005), Gaussian policy with tanh mean and a state-independent log-std,
exp(β·A) clipped at 100, cosine-annealed actor lr, Adam 3e-4 everywhere, batch 256, 1M steps.
Why no library: d3rlpy (the maintained offline-RL library) pins gymnasium==1.0.0, which cannot be
installed beside gymnasium-robotics 1.4.2 (needs gymnasium>=1.2); so this is one readable file.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import (BaselineAgent, ParamHolder, TransitionSampler, check_finite, check_ranges, mlp,
                              modified_rewards, soft_update)

EXP_ADV_MAX = 100.0  # CORL: clip on exp(β·A)
LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # CORL GaussianPolicy


@dataclass
class IQLConfig:
    hidden_dim: int = 256
    num_layers: int = 2
    discount: float = 0.99
    tau: float = 0.005              # target-network Polyak rate
    beta: float = 3.0               # inverse temperature of AWR
    iql_tau: float = 0.7            # expectile
    deterministic_actor: bool = False  # CORL iql_deterministic
    actor_dropout: float = 0.0      # CORL: 0.1 on Adroit, none elsewhere
    actor_lr: float = 3e-4
    qf_lr: float = 3e-4
    vf_lr: float = 3e-4
    batch_size: int = 256
    normalize_reward: bool = False  # CORL: 1000/(max-min return) scaling (locomotion)
    reward_scale: float = 1.0       # reward * scale + bias after normalisation
    reward_bias: float = 0.0        # CORL antmaze: -1

    def __post_init__(self) -> None:
        check_ranges(self, positive=("hidden_dim", "num_layers", "actor_lr", "qf_lr", "vf_lr", "batch_size"),
                     fractions=("discount", "tau", "iql_tau", "actor_dropout"))


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """IQL's asymmetric L2: mean |τ - 1(u<0)| u² with u = Q - V."""
    weight = torch.abs(expectile - (diff < 0).float())
    return torch.mean(weight * diff ** 2)


class TwinQ(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: int, layers: int) -> None:
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, 1, hidden, layers)
        self.q2 = mlp(obs_dim + act_dim, 1, hidden, layers)

    def both(self, obs_BD: torch.Tensor, act_BA: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.cat([obs_BD, act_BA], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class IQLAgent(BaselineAgent):
    """IQL agent (Agent protocol, harness/agent.py); acts with the policy mean."""

    METHOD = "iql"
    CONFIG = IQLConfig
    PROFILES = {
        "smoke": {"steps": 300, "hidden_dim": 32, "batch_size": 64},
        "quick": {"steps": 20_000},  # not in CORL: minutes on CPU
        "paper": {"steps": 1_000_000},  # CORL max_timesteps
    }

    def _build_networks(self) -> None:
        c = self.config
        self.qf = TwinQ(self.obs_dim, self.act_dim, c.hidden_dim, c.num_layers).to(self.device)
        self.q_target = copy.deepcopy(self.qf).requires_grad_(False)
        self.vf = mlp(self.obs_dim, 1, c.hidden_dim, c.num_layers).to(self.device)
        self.actor = mlp(self.obs_dim, self.act_dim, c.hidden_dim, c.num_layers, c.actor_dropout, nn.Tanh()).to(self.device)
        self.log_std = nn.Parameter(torch.zeros(self.act_dim, device=self.device))
        self.q_optimizer = torch.optim.Adam(self.qf.parameters(), lr=c.qf_lr)
        self.v_optimizer = torch.optim.Adam(self.vf.parameters(), lr=c.vf_lr)
        actor_params = list(self.actor.parameters()) + ([] if c.deterministic_actor else [self.log_std])
        self.actor_optimizer = torch.optim.Adam(actor_params, lr=c.actor_lr)

    def _attach_data(self, data: Any) -> None:
        c = self.config
        rewards = modified_rewards(data, c.reward_scale, c.reward_bias, c.normalize_reward)
        self.sampler = TransitionSampler(data, self.normaliser, rewards, self.device)

    def fit(self, data: Any, config: dict[str, Any] | None, steps: int, on_step=None) -> None:
        self.total_steps = int(steps)  # the cosine actor-lr schedule spans the whole fit (CORL)
        super().fit(data, config, steps, on_step)

    def _train_step(self, step: int) -> dict[str, float]:
        c = self.config
        obs, actions, rewards, next_obs, dones = self.sampler.sample(c.batch_size)
        self.actor.train()
        # V: expectile of the target twin-Q minimum
        with torch.no_grad():
            target_q = torch.min(*self.q_target.both(obs, actions))
            next_v = self.vf(next_obs).squeeze(-1)
        v = self.vf(obs).squeeze(-1)
        adv = target_q - v
        v_loss = expectile_loss(adv, c.iql_tau)
        # Q: one-step TD to V(s')
        targets = rewards + (1.0 - dones) * c.discount * next_v
        q1, q2 = self.qf.both(obs, actions)
        q_loss = (F.mse_loss(q1, targets) + F.mse_loss(q2, targets)) / 2
        # policy: advantage-weighted regression
        exp_adv = torch.exp(c.beta * adv.detach()).clamp(max=EXP_ADV_MAX)
        mean = self.actor(obs)
        if c.deterministic_actor:
            bc_losses = ((mean - actions) ** 2).sum(-1)
        else:
            std = torch.exp(self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX))
            bc_losses = -torch.distributions.Normal(mean, std).log_prob(actions).sum(-1)
        actor_loss = torch.mean(exp_adv * bc_losses)
        metrics = check_finite(step, v_loss=v_loss, q_loss=q_loss, actor_loss=actor_loss)

        self.v_optimizer.zero_grad()
        v_loss.backward()
        self.v_optimizer.step()
        self.q_optimizer.zero_grad()
        q_loss.backward()
        self.q_optimizer.step()
        soft_update(self.q_target, self.qf, c.tau)
        # CosineAnnealingLR(T_max = total steps), evaluated at the update's index
        for group in self.actor_optimizer.param_groups:
            group["lr"] = c.actor_lr * 0.5 * (1 + math.cos(math.pi * (step - 1) / max(self.total_steps, 1)))
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()
        return metrics

    def _act_unit(self, obs_BD: torch.Tensor) -> torch.Tensor:
        self.actor.eval()
        return self.actor(obs_BD)

    def _components(self) -> dict[str, Any]:
        return {"qf": self.qf, "q_target": self.q_target, "vf": self.vf, "actor": self.actor,
                "log_std": ParamHolder(self.log_std), "q_optimizer": self.q_optimizer,
                "v_optimizer": self.v_optimizer, "actor_optimizer": self.actor_optimizer}

