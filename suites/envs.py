"""Evaluation environments of the suites: flat Box observations and ``info["success"]``.

Dict observations (AntMaze, Kitchen, PointMaze) are flattened exactly as the dataset loader does
(``suites.minari_io.flatten_observation``: observation, achieved_goal, desired_goal, then other keys
sorted; nested dicts sorted), so a policy sees the same vector in training and evaluation.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from suites.minari_io import flat_dim, leaf_paths


class FlatObservation(gym.ObservationWrapper):
    """Dict observation -> float32 Box [obs_dim] in the dataset loader's order
    (``suites.minari_io.flatten_observation``; the key paths are resolved once, for speed)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.paths = leaf_paths(env.observation_space)
        self.observation_space = spaces.Box(-np.inf, np.inf, (flat_dim(env.observation_space),), np.float32)

    def observation(self, observation) -> np.ndarray:
        leaves = []
        for path in self.paths:
            value = observation
            for key in path:
                value = value[key]
            leaves.append(np.ravel(value))
        return np.concatenate(leaves).astype(np.float32)


class SuccessInfo(gym.Wrapper):
    """Sets ``info["success"]`` (bool) from the suite's rule: ``info`` or ``reward_positive``."""

    def __init__(self, env: gym.Env, rule: str):
        super().__init__(env)
        self.rule = rule

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.rule == "reward_positive":
            info["success"] = bool(reward > 0)
        else:
            info["success"] = bool(info.get("success", False))
        return obs, reward, terminated, truncated, info


def remove_maze_xml(maze_env: gym.Env) -> None:
    """Delete the temporary MuJoCo model file a maze env leaves behind; other envs: no-op.

    Gymnasium-Robotics 1.4.2 (PointMaze, AntMaze) writes each maze's model to
    ``<tmp>/ant_maze<time>.xml`` (beside its TemporaryDirectory, not in it), OGBench 1.2.2's
    locomaze to a ``tempfile.mkstemp`` ``<tmp>/tmp*.xml``; neither deletes it, so every env built
    left a file: thousands per sweep. MuJoCo has read the file by the time the env exists."""
    inner = maze_env.unwrapped
    for body in (inner, getattr(inner, "point_env", None), getattr(inner, "ant_env", None)):
        model_path = getattr(body, "fullpath", None)
        if model_path is None:
            continue
        model_path = Path(model_path)
        if (model_path.suffix == ".xml" and model_path.name.startswith(("ant_maze", "tmp"))
                and model_path.parent == Path(tempfile.gettempdir())):
            model_path.unlink(missing_ok=True)


def make_env(spec, seed: int | None = None, max_steps: int | None = None) -> gym.Env:
    """A gymnasium Env for ``spec`` (a DatasetSpec): flat float32 Box observation, episodes cut at
    ``max_steps`` (default ``spec.horizon``), ``info["success"]`` unless the suite's rule is ``none``.

    ``{id: ...}`` envs come from ``gymnasium.make`` (gymnasium_robotics registered first);
    ``{entry: "module:function"}`` envs from calling the factory with ``kwargs``.
    """
    limit = int(max_steps or spec.horizon)
    kwargs = dict(spec.env.get("kwargs") or {})
    if "id" in spec.env:
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        env = gym.make(spec.env["id"], max_episode_steps=limit, disable_env_checker=True, **kwargs)
        remove_maze_xml(env)
    else:
        from suites.registry import load_entry

        env = gym.wrappers.TimeLimit(load_entry(spec.env["entry"])(**kwargs), max_episode_steps=limit)
    if isinstance(env.observation_space, spaces.Dict):
        env = FlatObservation(env)
    elif env.observation_space.dtype != np.float32:
        env = gym.wrappers.TransformObservation(
            env, lambda o: np.asarray(o, np.float32),
            spaces.Box(-np.inf, np.inf, env.observation_space.shape, np.float32))
    if spec.success != "none":
        env = SuccessInfo(env, spec.success)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
