"""Evaluation of a batched policy in a gymnasium vector environment (every suite).

Episode i of an evaluation is reset with seed ``seed + i`` whatever the chunking, so results of a
deterministic agent do not depend on ``chunk_size``. A ``SyncVectorEnv`` runs the envs of one
chunk (it was faster than ``AsyncVectorEnv`` on 2 cores; platform notes). An env whose episode has
ended is kept out of the results: the agent keeps seeing that episode's last observation with
``dones`` true and reward 0, and whatever the vector env's autoreset does with it is ignored.
"""
from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from suites.envs import make_env
from suites.registry import dataset_spec


@dataclass
class EvalResult:
    returns: np.ndarray              # [E] float64 undiscounted episode returns
    normalized: np.ndarray           # [E] float64 D4RL score 100 * (R - ref_min) / (ref_max - ref_min)
    success: np.ndarray | None       # [E] bool (suite rule), None when the suite defines none
    lengths: np.ndarray              # [E] int64 env steps per episode


class RandomAgent:
    """Uniform random actions within the action bounds: D4RL's "random policy" for reference scores."""

    def __init__(self, seed: int = 0, device: str = "cpu"):
        self.rng = np.random.default_rng(seed)
        self.low = self.high = None

    def set_action_space(self, space: gym.spaces.Box) -> None:
        """Optional Agent hook called by ``evaluate`` with the env's single action space."""
        self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)

    def reset(self, num_envs: int) -> None:
        pass

    def act(self, obs_BD: np.ndarray) -> np.ndarray:
        """[B, obs_dim] -> [B, act_dim] float32 uniform in [low, high]."""
        return self.rng.uniform(self.low, self.high, (len(obs_BD), len(self.low))).astype(np.float32)

    def observe(self, rewards_B: np.ndarray, dones_B: np.ndarray) -> None:
        pass


def evaluate(agent, key: str, episodes: int, seed: int, max_steps: int | None = None,
             chunk_size: int | None = None) -> EvalResult:
    """Run ``episodes`` episodes of ``agent`` on dataset ``key``'s environment.

    ``max_steps`` cuts episodes (default: the suite's horizon); ``chunk_size`` bounds how many envs
    run at once (default: all ``episodes``). Calls ``agent.reset(n)`` per chunk, then each step
    ``agent.act(obs[n, obs_dim])`` and ``agent.observe(rewards[n], dones[n])``.
    """
    return evaluate_spec(agent, dataset_spec(key), episodes, seed, max_steps, chunk_size)


def evaluate_spec(agent, spec, episodes: int, seed: int, max_steps: int | None = None,
                  chunk_size: int | None = None) -> EvalResult:
    """``evaluate`` for a DatasetSpec (e.g. a modified one, as bench/eval_throughput.py uses)."""
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, not {episodes}")
    chunk = min(episodes, chunk_size or episodes)
    returns = np.zeros(episodes, np.float64)
    lengths = np.zeros(episodes, np.int64)
    success = np.zeros(episodes, bool)
    vector_env = gym.vector.SyncVectorEnv([lambda: make_env(spec, max_steps=max_steps) for _ in range(chunk)],
                                          autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
    if hasattr(agent, "set_action_space"):
        agent.set_action_space(vector_env.single_action_space)
    low, high = vector_env.single_action_space.low, vector_env.single_action_space.high
    try:
        for first in range(0, episodes, chunk):
            n = min(chunk, episodes - first)
            ids = slice(first, first + n)
            r, ln, s = _run_chunk(agent, vector_env, n, seed + first, low, high)
            returns[ids], lengths[ids], success[ids] = r, ln, s
    finally:
        vector_env.close()
    return EvalResult(returns=returns, normalized=100.0 * (returns - spec.ref_min) / (spec.ref_max - spec.ref_min),
                      success=None if spec.success == "none" else success, lengths=lengths)


def _run_chunk(agent, vector_env, n: int, first_seed: int, low, high):
    """Episodes ``first_seed .. first_seed + n - 1`` in the first ``n`` envs; returns [n] arrays."""
    total = vector_env.num_envs
    seeds = [first_seed + i for i in range(total)]   # envs beyond n run a spare episode, ignored
    obs, _ = vector_env.reset(seed=seeds)
    obs = np.asarray(obs, np.float32)
    returns, lengths = np.zeros(n), np.zeros(n, np.int64)
    success, done = np.zeros(n, bool), np.zeros(n, bool)
    shown = obs[:n].copy()        # what the agent sees; frozen for finished episodes
    agent.reset(n)
    while not done.all():
        actions = np.asarray(agent.act(shown), np.float32).reshape(n, -1)
        padded = np.zeros((total,) + vector_env.single_action_space.shape, np.float32)
        padded[:n] = np.clip(actions, low, high)
        obs, rewards, terminated, truncated, infos = vector_env.step(padded)
        live = ~done
        rewards = np.where(live, rewards[:n], 0.0)
        returns += rewards
        lengths += live
        if "success" in infos:
            success |= live & np.asarray(infos["success"][:n], bool) & infos.get("_success", np.ones(total, bool))[:n]
        ended = live & (terminated[:n] | truncated[:n])
        shown[live] = np.asarray(obs, np.float32)[:n][live]
        done |= ended
        agent.observe(rewards.astype(np.float32), done.copy())
    return returns, lengths, success
