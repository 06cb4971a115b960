"""A tiny real Agent for harness tests: linear behaviour cloning, trained with Adam.

It follows the Agent protocol (harness/agent.py) so the harness can be tested without MAGE or the
baselines. Test hooks, all real behaviour rather than mocks:
- ``nan_at_step``: the loss becomes NaN at that step (fakes a diverging run), so ``fit`` raises
  FloatingPointError as the protocol asks;
- $MAGE_TOY_FIT_LOG: a file each ``fit`` call appends "start <seed> <step>" and "end <seed> <step>"
  lines to, so a test can count how often each run was trained;
- ``act_noise``: act adds Gaussian noise drawn from the same generator that samples training batches
  (an agent that does not keep acting and training apart), so evaluating it midway changes training.
"""
from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

FIT_LOG_ENV = "MAGE_TOY_FIT_LOG"


@dataclass
class ToyConfig:
    lr: float = 1e-2                 # not in paper: toy agent, any small Adam step works
    batch_size: int = 64             # not in paper: toy agent
    nan_at_step: int | None = None   # test hook: the loss is NaN from this step on
    sleep_per_step: float = 0.0      # test hook: seconds per step, so a test can kill a run midway
    tag: str = ""                    # test hook: distinguishes plan columns that are otherwise equal
    act_noise: float = 0.0           # test hook: std of action noise drawn from the training generator


class ToyAgent:
    CONFIG = ToyConfig
    PROFILES = {"smoke": {"steps": 200}, "quick": {"steps": 500}, "paper": {"steps": 5000}}

    @classmethod
    def suite_overrides(cls, suite: str, dataset: str | None = None) -> dict[str, Any]:
        return {}

    def __init__(self, seed: int, device: str = "cpu"):
        self.seed, self.device = seed, device
        self.step = 0
        self.config = ToyConfig()
        self.policy: torch.nn.Linear | None = None
        self.optimizer: torch.optim.Adam | None = None
        self.rng = np.random.default_rng(seed)
        self.obs_mean = self.obs_std = self.low = self.high = None

    def _build(self, obs_dim: int, act_dim: int) -> None:
        torch.manual_seed(self.seed)
        self.policy = torch.nn.Linear(obs_dim, act_dim)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.lr)

    def fit(self, data, config: dict[str, Any], steps: int, on_step=None) -> None:
        known = {f.name for f in dataclasses.fields(ToyConfig)}
        for key in config:
            if key not in known:
                raise ValueError(f"unknown ToyAgent config key {key!r}")
        if self.policy is None:
            self.config = dataclasses.replace(ToyConfig(), **config)
            self.obs_mean = data.observations.mean(0)
            self.obs_std = data.observations.std(0) + 1e-6
            self.low, self.high = data.action_low, data.action_high
            self._build(data.obs_dim, data.act_dim)
        self._log("start")
        obs = torch.as_tensor((data.observations - self.obs_mean) / self.obs_std)
        actions = torch.as_tensor(data.actions)
        while self.step < steps:
            index = torch.as_tensor(self.rng.integers(0, len(obs), self.config.batch_size))
            loss = torch.nn.functional.mse_loss(self.policy(obs[index]), actions[index])
            self.step += 1
            if self.config.nan_at_step is not None and self.step >= self.config.nan_at_step:
                loss = loss * float("nan")
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {self.step}")
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            if self.config.sleep_per_step:
                time.sleep(self.config.sleep_per_step)
            if on_step is not None:
                on_step(self.step, {"loss": float(loss.item())})
        self._log("end")

    def _log(self, event: str) -> None:
        if os.environ.get(FIT_LOG_ENV):
            with open(os.environ[FIT_LOG_ENV], "a") as log:
                log.write(f"{event} {self.config.tag or '-'} {self.seed} {self.step}\n")

    def reset(self, num_envs: int) -> None:
        pass

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(((obs - self.obs_mean) / self.obs_std).astype(np.float32))
        action = self.policy(x).numpy()
        if self.config.act_noise:
            action = action + self.rng.normal(0.0, self.config.act_noise, action.shape)
        return np.clip(action, self.low, self.high).astype(np.float32)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step, "seed": self.seed, "config": dataclasses.asdict(self.config), "rng": self.rng.bit_generator.state,
            "policy": self.policy.state_dict(), "optimizer": self.optimizer.state_dict(),
            "obs_mean": self.obs_mean, "obs_std": self.obs_std, "low": self.low, "high": self.high,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.config = ToyConfig(**state["config"])
        self.obs_mean, self.obs_std, self.low, self.high = state["obs_mean"], state["obs_std"], state["low"], state["high"]
        self._build(len(self.obs_mean), len(self.low))
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.step = state["step"]
