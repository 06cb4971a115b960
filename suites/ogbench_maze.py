"""OGBench pointmaze-giant-navigate-v0 (Table 24): evaluation env and data generator.

The data follow OGBench's own script (github.com/seohongpark/ogbench,
data_gen_scripts/generate_locomaze.py with commands.sh's giant line: ``--dataset_type=navigate
--num_episodes=500 --max_episode_steps=2001 --noise=0.5``), which is not in the pip package and
is re-implemented here on the package's environment:
- each episode starts in a random open cell and drives to a random "vertex" cell (no hallway
  cells); the oracle action is the unit vector to ``get_oracle_subgoal`` (BFS subgoal), plus
  N(0, 0.5) noise, clipped to [-1, 1]; on success a new vertex goal is drawn (navigate);
- 2001 steps per episode (``terminate_at_goal=False``), 500 episodes = 1,000,500 transitions.
Differences from the released dataset: OGBench ships no goals or rewards (goal-conditioned
methods relabel in hindsight); we store the goal the oracle was driving to in the observation
([4]: x, y, gx, gy) and in ``infos["goal"]``, and reward 1.0 on the steps where OGBench's
``info["success"]`` is 1 for that goal (within 1.0 of it). OGBench's 10% validation episodes are
not generated.

Evaluation: OGBench's 5 evaluation tasks (fixed start/goal pairs), goal appended to the
observation, success = reaching the goal within 1000 steps (the episode terminates there).
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from suites.envs import remove_maze_xml

ENV_NAME = "pointmaze-giant-v0"
NUM_TASKS = 5
EPISODE_STEPS = 2001     # OGBench commands.sh: giant navigate --max_episode_steps=2001
ACTION_NOISE = 0.5       # OGBench commands.sh: pointmaze --noise=0.5


def _base_env(**kwargs) -> gym.Env:
    import ogbench.locomaze  # noqa: F401  (registers pointmaze-*-v0)

    env = gym.make(ENV_NAME, **kwargs)
    remove_maze_xml(env)
    return env


class GoalInObservation(gym.Wrapper):
    """OGBench maze env with the goal xy appended: observation [4] (x, y, gx, gy) float32.

    Each reset picks one of the 5 evaluation tasks, cycling from a seeded offset so that a vector
    env of seeded copies covers the tasks evenly; ``options={"task_id": k}`` forces a task.
    """

    def __init__(self, env: gym.Env, task_ids=tuple(range(1, NUM_TASKS + 1))):
        super().__init__(env)
        self.task_ids = tuple(task_ids)
        self.observation_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
        self._episode = 0
        self._offset = 0
        self._goal = np.zeros(2)

    def reset(self, *, seed=None, options=None):
        options = dict(options or {})
        if seed is not None:
            # OGBench draws reset noise from NumPy's global RNG; seed it so evaluation is repeatable.
            np.random.seed(seed)
            self.env.action_space.seed(seed)
            self._offset, self._episode = seed % len(self.task_ids), 0
        options.setdefault("task_id", self.task_ids[(self._offset + self._episode) % len(self.task_ids)])
        self._episode += 1
        obs, info = self.env.reset(options=options)
        self._goal = np.asarray(self.env.unwrapped.cur_goal_xy, np.float64)
        info["success"] = False
        return self._obs(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["success"] = bool(info["success"])
        return self._obs(obs), float(reward), terminated, truncated, info

    def _obs(self, obs) -> np.ndarray:
        return np.concatenate([np.asarray(obs)[:2], self._goal]).astype(np.float32)


def make_pointmaze_giant_env(task_ids=tuple(range(1, NUM_TASKS + 1)), max_episode_steps: int = 1000) -> gym.Env:
    """Evaluation env: OGBench's pointmaze-giant with its 5 tasks, goal in the observation."""
    return GoalInObservation(_base_env(max_episode_steps=max_episode_steps), task_ids)


def maze_cells(maze_map: np.ndarray) -> tuple[list, list]:
    """(all open cells, vertex cells) as OGBench's script defines them (vertex = not a straight hallway)."""
    all_cells, vertex_cells = [], []
    for i in range(maze_map.shape[0]):
        for j in range(maze_map.shape[1]):
            if maze_map[i, j] != 0:
                continue
            all_cells.append((i, j))
            vertical_hall = (maze_map[i - 1, j] == 0 and maze_map[i + 1, j] == 0
                             and maze_map[i, j - 1] == 1 and maze_map[i, j + 1] == 1)
            horizontal_hall = (maze_map[i, j - 1] == 0 and maze_map[i, j + 1] == 0
                               and maze_map[i - 1, j] == 1 and maze_map[i + 1, j] == 1)
            if not (vertical_hall or horizontal_hall):
                vertex_cells.append((i, j))
    return all_cells, vertex_cells


def navigate_episodes(num_steps: int, seed: int, episode_steps: int = EPISODE_STEPS,
                      action_noise: float = ACTION_NOISE, progress: bool = True):
    """Yield Minari episode dicts of OGBench's navigate recipe until ``num_steps`` transitions."""
    from tqdm import tqdm

    np.random.seed(seed)   # OGBench's env and script use NumPy's global RNG
    env = _base_env(terminate_at_goal=False, max_episode_steps=episode_steps)
    env.action_space.seed(seed)
    base = env.unwrapped
    all_cells, vertex_cells = maze_cells(base.maze_map)
    # get_oracle_subgoal runs a full BFS per call but depends only on (start cell, goal cell): cache it.
    subgoals = {}

    def oracle_subgoal(xy, goal):
        key = (base.xy_to_ij(xy), base.xy_to_ij(goal))
        if key not in subgoals:
            subgoals[key] = np.asarray(base.get_oracle_subgoal(xy, goal)[0], np.float64)
        return subgoals[key]
    bar = tqdm(total=num_steps, desc="pointmaze-giant", unit="step", disable=not progress, mininterval=1.0)
    produced = 0
    while produced < num_steps:
        length = min(episode_steps, num_steps - produced)
        init_ij = all_cells[np.random.randint(len(all_cells))]
        goal_ij = vertex_cells[np.random.randint(len(vertex_cells))]
        ob, _ = env.reset(options=dict(task_info=dict(init_ij=init_ij, goal_ij=goal_ij)))
        observations = np.zeros((length + 1, 4), np.float32)
        goals = np.zeros((length + 1, 2), np.float32)
        actions = np.zeros((length, 2), np.float32)
        rewards = np.zeros(length, np.float32)
        for t in range(length):
            goal = np.asarray(base.cur_goal_xy, np.float64)
            observations[t] = np.concatenate([ob[:2], goal])
            goals[t] = goal
            xy = base.get_xy()
            direction = oracle_subgoal(xy, goal) - xy
            direction = direction / (np.linalg.norm(direction) + 1e-6)
            action = np.clip(direction + np.random.normal(0, action_noise, 2), -1, 1)
            ob, _, terminated, truncated, info = env.step(action)
            actions[t], rewards[t] = action, info["success"]
            if info["success"]:
                base.set_goal(vertex_cells[np.random.randint(len(vertex_cells))])
        goal = np.asarray(base.cur_goal_xy, np.float64)
        observations[length], goals[length] = np.concatenate([ob[:2], goal]), goal
        truncations = np.zeros(length, bool)
        truncations[-1] = True
        yield {"observations": observations, "actions": actions, "rewards": rewards,
               "terminations": np.zeros(length, bool), "truncations": truncations, "infos": {"goal": goals}}
        produced += length
        bar.update(length)
    bar.close()
    env.close()


def generate_pointmaze_giant(minari_id: str, num_steps: int, seed: int, episode_steps: int = EPISODE_STEPS,
                             action_noise: float = ACTION_NOISE, progress: bool = True):
    """Write pointmaze-giant-navigate data (OGBench's recipe, goal in obs) as ``minari_id``."""
    from suites.minari_io import write_episodes

    return write_episodes(
        minari_id, navigate_episodes(num_steps, seed, episode_steps, action_noise, progress),
        spaces.Box(-np.inf, np.inf, (4,), np.float32), spaces.Box(-1.0, 1.0, (2,), np.float32),
        description=("pointmaze-giant-navigate by OGBench's generate_locomaze.py recipe (noisy BFS-subgoal "
                     "oracle to random vertex goals); observation = (x, y, goal x, goal y); reward 1 on success"),
        metadata={"seed": seed, "episode_steps": episode_steps, "action_noise": action_noise},
    )
