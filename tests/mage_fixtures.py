"""Small real-looking offline datasets for MAGE's tests: a 2-D point mass driven toward a goal."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from suites.dataset import OfflineDataset


def point_mass_dataset(num_episodes: int = 6, length: int = 30, noise: float = 0.3, seed: int = 0) -> OfflineDataset:
    """Point mass (position, velocity) steered to the origin by PD control plus Gaussian action noise;
    reward 1 within 0.3 of the origin; starts spread on the unit circle; actions in [-1, 1]^2."""
    rng = np.random.default_rng(seed)
    obs, act, rew = [], [], []
    for e in range(num_episodes):
        ang = 2 * np.pi * e / num_episodes
        p, v = np.array([np.cos(ang), np.sin(ang)]), np.zeros(2)
        for _ in range(length):
            a = np.clip(-1.5 * p - 0.5 * v + rng.normal(0, noise, 2), -1, 1)
            obs.append(np.concatenate([p, v]))
            act.append(a)
            v = 0.9 * v + 0.1 * a
            p = p + 0.1 * v
            rew.append(float(np.linalg.norm(p) < 0.3))
    n = num_episodes * length
    return OfflineDataset(
        name="synthetic/point-mass", observations=np.asarray(obs, np.float32), actions=np.asarray(act, np.float32),
        rewards=np.asarray(rew, np.float32), terminals=np.zeros(n, bool),
        timeouts=np.arange(n) % length == length - 1,
        episode_starts=np.arange(0, n + 1, length, dtype=np.int64), gamma=0.99)


# a model small enough for many short fits in the tests
TEST_CONFIG = dict(embed_dim=32, num_heads=2, num_blocks=1, codebook_size=16, codebook_dim=8, tokenizer_width=16,
                   tokenizer_depth=1, adapter_dim=4, batch_size=16, horizon=8, num_scales=3, dropout=0.0,
                   dead_code_restart_every=5, tokenizer_fraction=0.5)

