"""Shared pieces of the baseline agents: config resolution, normalisation, MLPs, a torch-side
transition sampler, and RNG bookkeeping for exact resume.

Why our own code and not a library: d3rlpy 2.8.1 (the well-kept offline-RL library) pins
gymnasium==1.0.0 while gymnasium-robotics 1.4.2 needs gymnasium>=1.2, so it cannot be installed
beside our stack; CORL (the reference for hyperparameters) is single-file scripts, not a package.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import yaml
from torch import nn

CONFIG_DIR = Path(__file__).parent / "configs"


def config_from_overrides(config_cls: type, overrides: dict[str, Any] | None) -> Any:
    """The method's config dataclass with ``overrides`` applied; ValueError naming an unknown key."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    for key in overrides or {}:
        if key not in names:
            raise ValueError(f"unknown {config_cls.__name__} key {key!r}; known: {', '.join(sorted(names))}")
    return config_cls(**dict(overrides or {}))


def check_ranges(config: Any, positive: tuple[str, ...] = (), fractions: tuple[str, ...] = ()) -> None:
    """A config dataclass's ``__post_init__`` check: ValueError naming the first field of ``positive``
    that is not > 0 or of ``fractions`` outside [0, 1], with its value."""
    for name in positive:
        if not getattr(config, name) > 0:
            raise ValueError(f"{name} must be > 0, got {getattr(config, name)}")
    for name in fractions:
        if not 0.0 <= getattr(config, name) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {getattr(config, name)}")


def suite_overrides_from_yaml(method: str, suite: str) -> dict[str, Any]:
    """``suites[suite]`` of baselines/configs/<method>.yaml (the ``source`` entry dropped); {} when absent."""
    path = CONFIG_DIR / f"{method}.yaml"
    table = yaml.safe_load(path.read_text()) or {}
    values = dict((table.get("suites") or {}).get(suite) or {})
    values.pop("source", None)
    return values


def check_finite(step: int, **losses: torch.Tensor) -> dict[str, float]:
    """Python floats of ``losses``; FloatingPointError naming the first non-finite loss and the step."""
    values = {name: float(value.detach()) for name, value in losses.items()}
    for name, value in values.items():
        if not math.isfinite(value):
            raise FloatingPointError(f"loss {name!r} is {value} at step {step}")
    return values


def mlp(in_dim: int, out_dim: int, hidden: int, layers: int, dropout: float = 0.0,
        out_act: nn.Module | None = None) -> nn.Sequential:
    """``layers`` hidden Linear+ReLU(+Dropout) blocks of width ``hidden``, then Linear to ``out_dim``."""
    blocks: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        blocks += [nn.Linear(dim, hidden), nn.ReLU()]
        if dropout > 0:
            blocks.append(nn.Dropout(dropout))
        dim = hidden
    blocks.append(nn.Linear(dim, out_dim))
    if out_act is not None:
        blocks.append(out_act)
    return nn.Sequential(*blocks)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: target ← (1-τ)·target + τ·source."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.mul_(1.0 - tau).add_(s, alpha=tau)


def observation_stats(observations: np.ndarray, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean [obs_dim] and std + eps [obs_dim] (CORL's compute_mean_std, eps 1e-3)."""
    return observations.mean(0).astype(np.float32), (observations.std(0) + eps).astype(np.float32)


class Normaliser:
    """Observation normalisation and action clipping shared by act() and training (torch tensors)."""

    def __init__(self, obs_mean: np.ndarray, obs_std: np.ndarray, action_low: np.ndarray,
                 action_high: np.ndarray, device: torch.device) -> None:
        self.obs_mean = torch.as_tensor(obs_mean, dtype=torch.float32, device=device)
        self.obs_std = torch.as_tensor(obs_std, dtype=torch.float32, device=device)
        self.action_low = torch.as_tensor(action_low, dtype=torch.float32, device=device)
        self.action_high = torch.as_tensor(action_high, dtype=torch.float32, device=device)

    def obs(self, obs_BD: torch.Tensor) -> torch.Tensor:
        return (obs_BD - self.obs_mean) / self.obs_std

    def to_env_action(self, unit_BA: torch.Tensor) -> torch.Tensor:
        """Map actions in [-1, 1] (the networks' range) to [low, high], clipped."""
        unit_BA = unit_BA.clamp(-1.0, 1.0)
        return self.action_low + (unit_BA + 1.0) * 0.5 * (self.action_high - self.action_low)

    def to_unit_action(self, act_BA: torch.Tensor) -> torch.Tensor:
        return ((act_BA - self.action_low) / (self.action_high - self.action_low) * 2.0 - 1.0).clamp(-1.0, 1.0)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k).cpu().numpy() for k in ("obs_mean", "obs_std", "action_low", "action_high")}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], device: torch.device) -> "Normaliser":
        return cls(state["obs_mean"], state["obs_std"], state["action_low"], state["action_high"], device)

    @classmethod
    def from_data(cls, data: Any, device: torch.device, eps: float = 1e-3) -> "Normaliser":
        mean, std = observation_stats(data.observations, eps)
        return cls(mean, std, data.action_low, data.action_high, device)


def modified_rewards(data: Any, reward_scale: float, reward_bias: float, normalize_reward: bool) -> np.ndarray:
    """[N] float32 training rewards: CORL's modify_reward (optional 1000/(max-min return) scaling
    for locomotion) then ``reward * reward_scale + reward_bias`` (antmaze: IQL bias -1, CQL 10x-5)."""
    rewards = data.rewards.astype(np.float64)
    if normalize_reward and data.num_episodes > 0:
        returns = data.episode_returns()
        spread = float(returns.max() - returns.min())
        if spread > 0:
            rewards = rewards * 1000.0 / spread
    return (rewards * reward_scale + reward_bias).astype(np.float32)


class TransitionSampler:
    """Uniform minibatches of (s, a, r, s', done) held as device tensors; indices drawn with torch's
    global RNG (inside ``agent_rng``), so sampling resumes exactly. The last step of a time-limited
    episode has no successor in the data and is never sampled."""

    def __init__(self, data: Any, normaliser: Normaliser, rewards: np.ndarray, device: torch.device) -> None:
        n = data.num_transitions
        is_last = np.zeros(n, bool)
        is_last[data.episode_starts[1:] - 1] = True
        terminal = data.terminals.astype(bool)
        valid = ~is_last | terminal
        next_index = np.minimum(np.arange(n) + 1, n - 1)
        next_index[terminal] = np.arange(n)[terminal]  # masked by done anyway
        self.index = torch.as_tensor(np.flatnonzero(valid), device=device)
        obs = torch.as_tensor(data.observations, dtype=torch.float32, device=device)
        self.obs = normaliser.obs(obs)
        self.next_index = torch.as_tensor(next_index, device=device)
        self.actions = normaliser.to_unit_action(torch.as_tensor(data.actions, dtype=torch.float32, device=device))
        self.rewards = torch.as_tensor(rewards, dtype=torch.float32, device=device)
        self.dones = torch.as_tensor(terminal, dtype=torch.float32, device=device)

    def sample(self, batch_size: int) -> tuple[torch.Tensor, ...]:
        """obs [B, D], actions [B, A] in [-1, 1], rewards [B], next_obs [B, D], dones [B]."""
        pick = torch.randint(len(self.index), (batch_size,)).to(self.index.device)
        i = self.index[pick]
        return self.obs[i], self.actions[i], self.rewards[i], self.obs[self.next_index[i]], self.dones[i]


class SeededRNG:
    """The agent's own torch RNG state: every random draw of the agent (init, sampling, dropout,
    policy noise) happens inside ``scope()``, which swaps it in and out of torch's global RNG, so
    two agents with one seed agree and a restored agent continues the same random stream."""

    def __init__(self, seed: int, device: torch.device) -> None:
        self.device = device
        self.cuda = device.type == "cuda"
        with torch.random.fork_rng(devices=[device] if self.cuda else []):
            torch.manual_seed(seed)
            self.cpu_state = torch.get_rng_state()
            self.cuda_state = torch.cuda.get_rng_state(device) if self.cuda else None

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        with torch.random.fork_rng(devices=[self.device] if self.cuda else []):
            torch.set_rng_state(self.cpu_state)
            if self.cuda:
                torch.cuda.set_rng_state(self.cuda_state, self.device)
            try:
                yield
            finally:
                self.cpu_state = torch.get_rng_state()
                if self.cuda:
                    self.cuda_state = torch.cuda.get_rng_state(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"cpu": self.cpu_state.clone(), "cuda": None if self.cuda_state is None else self.cuda_state.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.cpu_state = state["cpu"].clone()
        if self.cuda and state.get("cuda") is not None:
            self.cuda_state = state["cuda"].clone()


def as_obs_tensor(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    """obs [B, obs_dim] (any float dtype) -> float32 tensor on ``device``."""
    return torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device)


def to_numpy_action(act_BA: torch.Tensor) -> np.ndarray:
    return act_BA.detach().cpu().numpy().astype(np.float32)


class BaselineAgent:
    """Skeleton shared by the baselines: builds networks on the first ``fit`` (dimensions come from
    the data), runs the optimisation loop from the stored step, checks losses, and saves/restores
    everything for exact resume. Subclasses set ``METHOD``, ``CONFIG``, ``PROFILES`` and implement
    ``_build_networks``, ``_attach_data``, ``_train_step``, ``_act_unit`` and ``_components``."""

    METHOD: str = ""
    CONFIG: type = object
    PROFILES: dict[str, dict[str, Any]] = {}
    OBS_STD_EPS = 1e-3  # CORL compute_mean_std eps for IQL/CQL/BC (DT: 1e-6)

    def __init__(self, seed: int = 0, device: str = "cpu") -> None:
        self.seed = int(seed)
        self.device = torch.device(device)
        self.rng = SeededRNG(self.seed, self.device)
        self.config = None
        self.step = 0
        self.obs_dim = self.act_dim = 0
        self.normaliser: Normaliser | None = None
        self.num_envs = 0

    @classmethod
    def suite_overrides(cls, suite: str, dataset: str | None = None) -> dict[str, Any]:
        """Per-suite hyperparameters from baselines/configs/<method>.yaml (sources named there);
        ``dataset`` (the dataset key, docs/interfaces.md) is accepted; these tables are per suite."""
        return suite_overrides_from_yaml(cls.METHOD, suite)

    # -- training --------------------------------------------------------------------------
    def fit(self, data: Any, config: dict[str, Any] | None, steps: int, on_step=None) -> None:
        """Train until ``steps`` optimisation steps (from the stored step on a restored agent).

        ``config`` is validated every call (unknown key -> ValueError) but only the first fit of a
        fresh agent adopts it; a restored agent keeps the config of its checkpoint.
        """
        resolved = config_from_overrides(self.CONFIG, config)
        if self.config is None:  # first fit: the config and data statistics are fixed from here on
            self.config = resolved
            self.obs_dim, self.act_dim = data.obs_dim, data.act_dim
            self.normaliser = Normaliser.from_data(data, self.device, self.OBS_STD_EPS)
            with self.rng.scope():
                self._build_networks()
        elif (data.obs_dim, data.act_dim) != (self.obs_dim, self.act_dim):
            raise ValueError(f"data dims {(data.obs_dim, data.act_dim)} differ from the agent's {(self.obs_dim, self.act_dim)}")
        self._attach_data(data)
        for step in range(self.step + 1, int(steps) + 1):
            with self.rng.scope():
                metrics = self._train_step(step)
            self.step = step
            if on_step is not None:
                on_step(step, metrics)

    # -- acting ----------------------------------------------------------------------------
    def reset(self, num_envs: int) -> None:
        self.num_envs = int(num_envs)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.normaliser is None:
            raise RuntimeError(f"{type(self).__name__}.act called before fit/load_state_dict")
        obs_BD = self.normaliser.obs(as_obs_tensor(obs, self.device))
        with self.rng.scope():
            unit_BA = self._act_unit(obs_BD)
        return to_numpy_action(self.normaliser.to_env_action(unit_BA))

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """Markov policies keep no per-episode state."""

    # -- checkpointing ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self.config is None:
            raise RuntimeError(f"{type(self).__name__}.state_dict called before fit")
        return {
            "method": self.METHOD, "seed": self.seed, "step": self.step,
            "config": dataclasses.asdict(self.config), "obs_dim": self.obs_dim, "act_dim": self.act_dim,
            "normaliser": self.normaliser.state_dict(), "rng": self.rng.state_dict(),
            "components": {name: obj.state_dict() for name, obj in self._components().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.METHOD:
            raise ValueError(f"state of method {state.get('method')!r} given to {type(self).__name__}")
        self.seed, self.step = state["seed"], state["step"]
        self.config = self.CONFIG(**state["config"])
        self.obs_dim, self.act_dim = state["obs_dim"], state["act_dim"]
        self.normaliser = Normaliser.from_state(state["normaliser"], self.device)
        with self.rng.scope():
            self._build_networks()
        for name, obj in self._components().items():
            obj.load_state_dict(state["components"][name])
        self.rng.load_state_dict(state["rng"])

    # -- subclass hooks --------------------------------------------------------------------
    def _build_networks(self) -> None:
        raise NotImplementedError

    def _attach_data(self, data: Any) -> None:
        raise NotImplementedError

    def _train_step(self, step: int) -> dict[str, float]:
        raise NotImplementedError

    def _act_unit(self, obs_BD: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _components(self) -> dict[str, Any]:
        raise NotImplementedError


class ParamHolder:
    """state_dict/load_state_dict for a bare Parameter (copied in place, so optimisers keep it)."""

    def __init__(self, param: nn.Parameter) -> None:
        self.param = param

    def state_dict(self) -> torch.Tensor:
        return self.param.detach().clone()

    def load_state_dict(self, value: torch.Tensor) -> None:
        with torch.no_grad():
            self.param.copy_(value)
