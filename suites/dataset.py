"""The one in-memory offline dataset every method trains on (design §3).

All arrays are flat over transitions (N = total steps of all episodes), float32 unless noted.
Episode i occupies rows ``episode_starts[i]:episode_starts[i + 1]``.
Returns-to-go are computed once, with the suite's discount γ, when the dataset is built.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OfflineDataset:
    name: str                     # the Minari id it was loaded from, e.g. "D4RL/pen/human-v2"
    observations: np.ndarray      # [N, obs_dim] float32 (flat; goal-conditioned suites include the goal)
    actions: np.ndarray           # [N, act_dim] float32
    rewards: np.ndarray           # [N] float32
    terminals: np.ndarray         # [N] bool, true MDP termination
    timeouts: np.ndarray          # [N] bool, truncation (time limit)
    episode_starts: np.ndarray    # [E + 1] int64 offsets; episode_starts[-1] == N
    gamma: float                  # discount used for returns_to_go
    returns_to_go: np.ndarray = field(default=None)  # [N] float32, sum_{t'>=t} γ^{t'-t} r_t' within the episode
    action_low: np.ndarray | None = None   # [act_dim] float32 bounds of the action space
    action_high: np.ndarray | None = None  # [act_dim]
    continuing: bool = False      # the episodes are consecutive cuts of one continuing stream (each starts where
                                  # the last ended), as the generated maze2d data; RTG here still restarts at each cut

    def __post_init__(self) -> None:
        if self.returns_to_go is None:
            self.returns_to_go = discounted_returns_to_go(self.rewards, self.episode_starts, self.gamma)
        if self.action_low is None:
            self.action_low = np.full(self.act_dim, -1.0, np.float32)
        if self.action_high is None:
            self.action_high = np.full(self.act_dim, 1.0, np.float32)

    @property
    def num_transitions(self) -> int:
        return int(self.observations.shape[0])

    @property
    def num_episodes(self) -> int:
        return int(len(self.episode_starts) - 1)

    @property
    def obs_dim(self) -> int:
        return int(self.observations.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.actions.shape[1])

    def episode_lengths(self) -> np.ndarray:
        """[E] int64 number of steps of each episode."""
        return np.diff(self.episode_starts)

    def episode_returns(self) -> np.ndarray:
        """[E] float64 undiscounted return of each episode."""
        return np.add.reduceat(self.rewards.astype(np.float64), self.episode_starts[:-1]) if self.num_episodes else np.zeros(0)


def discounted_returns_to_go(rewards: np.ndarray, episode_starts: np.ndarray, gamma: float) -> np.ndarray:
    """[N] float32 discounted return-to-go per step, restarted at each episode boundary."""
    rtg = np.zeros(len(rewards), np.float64)
    for start, end in zip(episode_starts[:-1], episode_starts[1:]):
        running = 0.0
        for t in range(end - 1, start - 1, -1):
            running = rewards[t] + gamma * running
            rtg[t] = running
    return rtg.astype(np.float32)
