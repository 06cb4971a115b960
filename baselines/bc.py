"""Behaviour cloning (BC): a deterministic tanh MLP policy regressed on dataset actions (MSE).

Faithful to CORL's algorithms/offline/any_percent_bc.py with frac = 1.0 (all data): 2x256 ReLU
MLP, tanh output, Adam 3e-4, batch 256, 1M steps, normalised states.
Why no library: d3rlpy (the maintained offline-RL library) pins gymnasium==1.0.0, which cannot be
installed beside gymnasium-robotics 1.4.2 (needs gymnasium>=1.2); so this is one readable file.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import BaselineAgent, TransitionSampler, check_finite, check_ranges, mlp, modified_rewards


@dataclass
class BCConfig:
    hidden_dim: int = 256       # CORL any_percent_bc Actor
    num_layers: int = 2         # CORL: two hidden layers
    learning_rate: float = 3e-4  # CORL: Adam 3e-4
    batch_size: int = 256       # CORL

    def __post_init__(self) -> None:
        check_ranges(self, positive=("hidden_dim", "num_layers", "learning_rate", "batch_size"))


class BCAgent(BaselineAgent):
    """BC agent (Agent protocol, harness/agent.py)."""

    METHOD = "bc"
    CONFIG = BCConfig
    PROFILES = {
        "smoke": {"steps": 300, "hidden_dim": 32, "batch_size": 64},
        "quick": {"steps": 20_000},  # not in CORL: minutes on CPU
        "paper": {"steps": 1_000_000},  # CORL max_timesteps
    }

    def _build_networks(self) -> None:
        c = self.config
        self.actor = mlp(self.obs_dim, self.act_dim, c.hidden_dim, c.num_layers, out_act=nn.Tanh()).to(self.device)
        self.optimizer = torch.optim.Adam(self.actor.parameters(), lr=c.learning_rate)

    def _attach_data(self, data: Any) -> None:
        self.sampler = TransitionSampler(data, self.normaliser, modified_rewards(data, 1.0, 0.0, False), self.device)

    def _train_step(self, step: int) -> dict[str, float]:
        obs, actions, _, _, _ = self.sampler.sample(self.config.batch_size)
        self.actor.train()
        loss = F.mse_loss(self.actor(obs), actions)
        metrics = check_finite(step, loss=loss)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return metrics

    def _act_unit(self, obs_BD: torch.Tensor) -> torch.Tensor:
        self.actor.eval()
        return self.actor(obs_BD)

    def _components(self) -> dict[str, Any]:
        return {"actor": self.actor, "optimizer": self.optimizer}
