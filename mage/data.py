"""Normalisation statistics and H-step window sampling from an OfflineDataset (duck-typed).

Window features per step, by scheme: rs = [R, s], s = [s], a / a+cql = [a], rsa = [R, s, a].
States are z-scored with the dataset's statistics; actions mapped to [-1, 1] by the action bounds;
returns-to-go divided by ``rtg_scale``. A window running past its segment's end repeats the last
state, with R = 0 and a = 0 there (the episode has ended: nothing more to gain or do).

A segment is an episode, or with ``across_cuts`` a whole continuing stream: datasets whose episodes
are consecutive cuts of one stream (``data.continuing``, e.g. the generated maze2d data) then get
RTG that runs on past the cuts and windows that span them, as the stream did.
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
    value_scale: float     # the data's max |Monte-Carlo RTG|: the unit of the stage-0 TD value (fixed once set)

    @classmethod
    def from_data(cls, data, quantile: float, scale: float, gamma: float | None = None,
                  across_cuts: bool = False) -> "Normalizer":
        """Statistics of ``data``; RTG with ``gamma`` (None: the data's own) over its segments."""
        obs = np.asarray(data.observations, np.float64)
        gamma = float(data.gamma if gamma is None else gamma)
        norm = cls(
            obs_mean=obs.mean(0).astype(np.float32),
            obs_std=(obs.std(0) + 1e-3).astype(np.float32),  # not in paper: floor keeps constant dims finite
            act_low=np.asarray(data.action_low, np.float32),
            act_high=np.asarray(data.action_high, np.float32),
            rtg_scale=1.0, rtg_min=0.0, rtg_max=0.0, gamma=gamma, target_return=0.0, value_scale=1.0,
        )
        norm.set_returns(returns_to_go(data, gamma, across_cuts), data.episode_starts, quantile, scale)
        norm.value_scale = norm.rtg_scale
        return norm

    def set_returns(self, rtg_N: np.ndarray, episode_starts: np.ndarray, quantile: float, scale: float) -> None:
        """The RTG statistics (scale, range, target) of the raw returns ``rtg_N`` [N] that MAGE models."""
        rtg = np.asarray(rtg_N, np.float64)
        self.rtg_scale = float(max(np.abs(rtg).max(initial=0.0), 1e-6))
        self.rtg_min, self.rtg_max = float(rtg.min() / self.rtg_scale), float(rtg.max() / self.rtg_scale)
        starts = np.asarray(episode_starts[:-1], np.int64)
        episode_rtg = rtg[starts] if len(starts) else rtg[:1]
        self.target_return = float(scale * np.quantile(episode_rtg, quantile))

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalizer":
        arrays = ("obs_mean", "obs_std", "act_low", "act_high")
        d = {"value_scale": d["rtg_scale"], **d}   # saved before value_scale existed
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


def segment_starts(data, across_cuts: bool) -> np.ndarray:
    """[S + 1] int64 row offsets of the segments RTG and windows run within: the episodes, or, with
    ``across_cuts`` and a continuing dataset (its episodes are consecutive cuts of one stream), the stream."""
    starts = np.asarray(data.episode_starts, np.int64)
    if across_cuts and getattr(data, "continuing", False):
        return starts[[0, -1]]
    return starts


def returns_to_go(data, gamma: float, across_cuts: bool = False) -> np.ndarray:
    """[N] float32 discounted RTG within each segment; the data's own when nothing differs."""
    starts = segment_starts(data, across_cuts)
    if gamma == float(data.gamma) and len(starts) == len(data.episode_starts):
        return np.asarray(data.returns_to_go, np.float32)
    rewards = np.asarray(data.rewards, np.float64)
    rtg = np.zeros(len(rewards), np.float64)
    for start, end in zip(starts[:-1], starts[1:]):
        running = 0.0
        for t in range(end - 1, start - 1, -1):
            running = rewards[t] + gamma * running
            rtg[t] = running
    return rtg.astype(np.float32)


def n_step_returns(data, gamma: float, n: int, value_N: np.ndarray, across_cuts: bool = False) -> np.ndarray:
    """[N] float64 R_t = sum_{i<m} gamma^i r_{t+i} + gamma^m B_{t+m}, m = min(n, rows left in t's segment).

    ``value_N`` [N]: V(s_j) of every row's state, in reward units. B_j = V(s_j) inside the segment; after its
    last row e: 0 where the data terminate, V(s_{e+1}) where the stream goes on (a cut of a continuing
    dataset), else V(s_e) (a time limit: the state after e is not stored; its neighbour stands in).
    """
    starts = segment_starts(data, across_cuts)
    rewards = np.asarray(data.rewards, np.float64)
    value_N = np.asarray(value_N, np.float64)
    terminals = np.asarray(data.terminals, bool)
    continuing = bool(getattr(data, "continuing", False))
    out = np.zeros(len(rewards), np.float64)
    for start, end in zip(starts[:-1], starts[1:]):
        length = end - start
        tail = np.zeros(length + 1)     # tail[j] = discounted reward of rows start + j .. end - 1
        for j in range(length - 1, -1, -1):
            tail[j] = rewards[start + j] + gamma * tail[j + 1]
        after = 0.0 if terminals[end - 1] else value_N[end] if continuing and end < len(rewards) else value_N[end - 1]
        boot = np.append(value_N[start:end], after)
        j = np.arange(length)
        m = np.minimum(n, length - j)
        decay = gamma ** m
        out[start:end] = tail[j] - decay * tail[j + m] + decay * boot[j + m]
    return out


class WindowSampler:
    """Samples batches of windows on ``device`` with a torch generator (saved for exact resume).

    ``rtg_N``: the raw returns [N] the windows carry (default: the data's discounted RTG over the segments)."""

    def __init__(self, data, norm: Normalizer, layout: WindowLayout, horizon: int, device: torch.device,
                 across_cuts: bool = False, rtg_N: np.ndarray | None = None) -> None:
        t = lambda a: torch.as_tensor(np.asarray(a), device=device)
        self.obs = t(norm.obs(np.asarray(data.observations, np.float32)).astype(np.float32))
        self.act = t(norm.act(np.asarray(data.actions, np.float32)).astype(np.float32))
        rtg = returns_to_go(data, norm.gamma, across_cuts) if rtg_N is None else rtg_N
        self.rtg = t((rtg / norm.rtg_scale).astype(np.float32))
        self.rew = t(np.asarray(data.rewards, np.float32))
        starts = segment_starts(data, across_cuts)
        ends = np.repeat(starts[1:] - 1, np.diff(starts))  # [N] last row of each row's segment
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
            "has_next0": ((idx < end) | (self.terminal[idx] > 0)).float(),   # s1 is the true successor (or terminal)
        }
