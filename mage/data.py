"""Normalisation statistics and H-step window sampling from an OfflineDataset (duck-typed).

Window features per step, by scheme: rs = [R, s], s = [s], a / a+cql = [a], rsa = [R, s, a].
States are z-scored with the dataset's statistics; actions mapped to [-1, 1] by the action bounds;
returns-to-go divided by ``rtg_scale``. A window running past its episode's end repeats the last
state, with R = 0 and a = 0 there (the episode has ended: nothing more to gain or do).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class Normalizer:
    obs_mean: np.ndarray   # [obs_dim]
    obs_std: np.ndarray    # [obs_dim]
    act_low: np.ndarray    # [act_dim]
    act_high: np.ndarray   # [act_dim]
    rtg_scale: float       # not in paper: max |R| of the data, so normalised R lies in [-1, 1]
    rtg_min: float         # normalised R range, for Table 23's weights w = (R - min) / (max - min)
    rtg_max: float
    gamma: float           # the data's discount (observe() rolls the target RTG with it)
    target_return: float   # raw target R_0 given at the start of an episode

    @classmethod
    def from_data(cls, data, quantile: float, scale: float) -> "Normalizer":
        obs = np.asarray(data.observations, np.float64)
        rtg = np.asarray(data.returns_to_go, np.float64)
        rtg_scale = float(max(np.abs(rtg).max(initial=0.0), 1e-6))
        starts = np.asarray(data.episode_starts[:-1], np.int64)
        episode_rtg = rtg[starts] if len(starts) else rtg[:1]
        return cls(
            obs_mean=obs.mean(0).astype(np.float32),
            obs_std=(obs.std(0) + 1e-3).astype(np.float32),  # not in paper: floor keeps constant dims finite
            act_low=np.asarray(data.action_low, np.float32),
            act_high=np.asarray(data.action_high, np.float32),
            rtg_scale=rtg_scale,
            rtg_min=float(rtg.min() / rtg_scale), rtg_max=float(rtg.max() / rtg_scale),
            gamma=float(data.gamma),
            target_return=float(scale * np.quantile(episode_rtg, quantile)),
        )

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        arrays = ("obs_mean", "obs_std", "act_low", "act_high")
        return cls(**{k: (np.asarray(v, np.float32) if k in arrays else v) for k, v in d.items()})

    def obs(self, obs: np.ndarray) -> np.ndarray:
        return (obs - self.obs_mean) / self.obs_std

    def act(self, act: np.ndarray) -> np.ndarray:
        return 2 * (act - self.act_low) / np.maximum(self.act_high - self.act_low, 1e-6) - 1

    def unact(self, act_n: np.ndarray) -> np.ndarray:
        return self.act_low + (np.clip(act_n, -1, 1) + 1) / 2 * (self.act_high - self.act_low)


@dataclass
class WindowLayout:
    """Column positions of R, s and a inside a window's per-step features."""
    rtg: int | None
    states: slice | None
    actions: slice | None
    width: int

    @classmethod
    def for_scheme(cls, scheme: str, obs_dim: int, act_dim: int) -> "WindowLayout":
        col, rtg, states, actions = 0, None, None, None
        if scheme in ("rs", "rsa"):
            rtg, col = 0, 1
        if scheme in ("rs", "s", "rsa"):
            states, col = slice(col, col + obs_dim), col + obs_dim
        if scheme in ("a", "a+cql", "rsa"):
            actions, col = slice(col, col + act_dim), col + act_dim
        return cls(rtg, states, actions, col)


class WindowSampler:
    """Samples batches of windows on ``device`` with a torch generator (saved for exact resume)."""

    def __init__(self, data, norm: Normalizer, layout: WindowLayout, horizon: int, device: torch.device) -> None:
        t = lambda a: torch.as_tensor(np.asarray(a), device=device)
        self.obs = t(norm.obs(np.asarray(data.observations, np.float32)).astype(np.float32))
        self.act = t(norm.act(np.asarray(data.actions, np.float32)).astype(np.float32))
        self.rtg = t((np.asarray(data.returns_to_go, np.float32) / norm.rtg_scale).astype(np.float32))
        self.rew = t(np.asarray(data.rewards, np.float32))
        starts = np.asarray(data.episode_starts, np.int64)
        ends = np.repeat(starts[1:] - 1, np.diff(starts))  # [N] last row of each row's episode
        self.end = t(ends)
        self.terminal = t(np.asarray(data.terminals, np.float32))
        self.layout, self.horizon, self.device = layout, horizon, device
        self.steps = torch.arange(horizon, device=device)
        self.n = len(ends)

    def sample(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(0, self.n, (batch,), generator=generator).to(self.device)
        rows = idx[:, None] + self.steps
        end = self.end[idx]
        valid = rows <= end[:, None]
        rows = torch.minimum(rows, end[:, None])
        feats = []
        if self.layout.rtg is not None:
            feats.append((self.rtg[rows] * valid)[..., None])
        if self.layout.states is not None:
            feats.append(self.obs[rows])
        if self.layout.actions is not None:
            feats.append(self.act[rows] * valid[..., None])
        nxt = torch.minimum(idx + 1, end)
        return {
            "window": torch.cat(feats, dim=-1),             # [B, H, F]
            "s0": self.obs[idx], "R0": self.rtg[idx][:, None],  # [B, S], [B, 1]
            "a0": self.act[idx], "r0": self.rew[idx],
            "s1": self.obs[nxt], "a1": self.act[nxt],
            "done0": ((idx == end) * self.terminal[idx]).float(),
        }
