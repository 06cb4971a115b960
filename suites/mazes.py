"""Maze2D and Multi2D by D4RL's recipe, on Gymnasium-Robotics' PointMaze physics.

What is here:
- ``MAZES``: D4RL's maze2d maps (umaze / medium / large) with cell <-> xy conversion in the
  coordinates of Gymnasium-Robotics' PointMaze (x right, y up, maze centred on the origin, cells
  of width 1). The maps equal PointMaze_UMaze/Medium/Large-v3's.
- ``WaypointController``: D4RL's expert. Q-iteration over maze cells gives the cell path to the
  target; a PD controller (P = 10, D = -1) steers to the next waypoint.
- ``make_maze2d_env`` / ``make_multi2d_env``: evaluation environments (flat Box observations).
- ``generate_maze2d``: the dataset generator (a noisy controller driving to ever new random
  targets in one continuing stream, cut into fixed-length Minari episodes).
- ``add_goal_to_observations``: the Multi2D transform (goal in the observation).

Positions are in maze units (one cell = 1.0), velocities in units/s, time step 0.01 s.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import cached_property

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from suites.envs import remove_maze_xml

REWARD_RADIUS = 0.5          # D4RL maze2d: sparse reward 1 within 0.5 of the goal
HORIZONS = {"umaze": 300, "medium": 600, "large": 800}   # D4RL maze2d-v1 max_episode_steps

# D4RL's maze strings ('#' wall, 'O' open, 'G' the fixed evaluation goal).
MAZE_STRINGS = {
    "umaze": ("#####", "#GOO#", "###O#", "#OOO#", "#####"),
    "medium": ("########", "#OO##OO#", "#OO#OOO#", "##OOO###", "#OO#OOO#", "#O#OO#O#", "#OOO#OG#",
               "########"),
    "large": ("############", "#OOOO#OOOOO#", "#O##O#O#O#O#", "#OOOOOO#OOO#", "#O####O###O#",
              "#OO#O#OOOOO#", "##O#O#O#O###", "#OO#OOO#OGO#", "############"),
}


@dataclass(frozen=True)
class MazeLayout:
    """A grid maze. Cells are (row, col); row 0 is the top row (largest y)."""
    name: str
    rows: tuple[str, ...]

    @cached_property
    def walls(self) -> np.ndarray:
        """[H, W] bool, True where a wall block stands."""
        return np.array([[ch == "#" for ch in row] for row in self.rows])

    @cached_property
    def open_cells(self) -> list[tuple[int, int]]:
        h, w = self.walls.shape
        return [(i, j) for i in range(h) for j in range(w) if not self.walls[i, j]]

    @cached_property
    def goal_cell(self) -> tuple[int, int]:
        """D4RL's fixed evaluation goal cell (the 'G' of the map)."""
        return next((i, j) for i, row in enumerate(self.rows) for j, ch in enumerate(row) if ch == "G")

    def cell_to_xy(self, cell) -> np.ndarray:
        """[2] float64 centre of a cell, in PointMaze's coordinates."""
        h, w = self.walls.shape
        i, j = cell
        return np.array([(j + 0.5) - w / 2, h / 2 - (i + 0.5)])

    def xy_to_cell(self, xy) -> tuple[int, int]:
        h, w = self.walls.shape
        return int(np.floor(h / 2 - xy[1])), int(np.floor(xy[0] + w / 2))

    def gymnasium_map(self) -> list[list[int]]:
        """The map as Gymnasium-Robotics' PointMaze takes it (1 wall, 0 open)."""
        return [[int(ch == "#") for ch in row] for row in self.rows]

    def neighbours(self, cell) -> list[tuple[int, int]]:
        i, j = cell
        return [(i + di, j + dj) for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if not self.walls[i + di, j + dj]]

    def path_lengths_from(self, cell) -> dict[tuple[int, int], int]:
        """BFS distance (in cells) from ``cell`` to every reachable open cell."""
        dist = {cell: 0}
        queue = deque([cell])
        while queue:
            c = queue.popleft()
            for n in self.neighbours(c):
                if n not in dist:
                    dist[n] = dist[c] + 1
                    queue.append(n)
        return dist


MAZES = {name: MazeLayout(name, rows) for name, rows in MAZE_STRINGS.items()}


def maze_layout(maze: str) -> MazeLayout:
    if maze not in MAZES:
        raise ValueError(f"unknown maze {maze!r}; expected one of {sorted(MAZES)}")
    return MAZES[maze]


def q_iteration_policy(layout: MazeLayout, target, num_iters: int = 50, discount: float = 0.99) -> dict:
    """Greedy next cell toward ``target`` for every open cell, by Q-iteration as D4RL's controller.

    Actions: stay, up, down, left, right; reward 1 for being in the target cell. D4RL runs 50
    iterations; the largest maze's longest path is shorter than that, so every cell is solved.
    """
    cells = layout.open_cells
    index = {c: k for k, c in enumerate(cells)}
    moves = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))
    next_idx = np.array([[index.get((i + di, j + dj), index[(i, j)]) for di, dj in moves] for i, j in cells])
    reward = np.array([float(c == tuple(target)) for c in cells])
    values = np.zeros(len(cells))
    for _ in range(num_iters):
        q = reward[next_idx] + discount * values[next_idx]      # [S, A]
        values = q.max(axis=1)
    q = reward[next_idx] + discount * values[next_idx]
    return {c: cells[next_idx[k, int(np.argmax(q[k]))]] for k, c in enumerate(cells)}


@dataclass
class WaypointController:
    """D4RL's expert for maze2d: Q-iteration waypoints + PD control.

    ``act(position[2], velocity[2]) -> (action[2] in [-1, 1], reached)`` steers to the current
    waypoint; waypoints are the cell centres of the planned path, each jittered by -U(0, jitter)
    per coordinate (the D4RL recipe as given in reference-facts.md).
    """
    layout: MazeLayout
    rng: np.random.Generator
    p_gain: float = 10.0
    d_gain: float = -1.0
    solve_thresh: float = 0.1       # D4RL: target reached within 0.1
    jitter: float = 0.2
    replan_after: int = 300         # not in D4RL: replan if no waypoint progress for this many steps (noise can push the ball around a corner)
    _policies: dict = field(default_factory=dict, repr=False)
    _waypoints: list = field(default_factory=list, repr=False)
    _index: int = 0
    _target: np.ndarray | None = None
    _since_progress: int = 0

    def set_target(self, position, target_xy) -> None:
        """Plan the cell path from ``position`` to the cell holding ``target_xy`` (both [2])."""
        target_cell = self.layout.xy_to_cell(target_xy)
        self._target = self.layout.cell_to_xy(target_cell)
        self._plan(position, target_cell)

    def _plan(self, position, target_cell) -> None:
        if target_cell not in self._policies:
            self._policies[target_cell] = q_iteration_policy(self.layout, target_cell)
        policy = self._policies[target_cell]
        cell = self.layout.xy_to_cell(position)
        if cell not in policy:   # numerically inside a wall block: plan from the nearest open cell
            cell = min(policy, key=lambda c: np.linalg.norm(self.layout.cell_to_xy(c) - position))
        path = []
        while cell != target_cell and len(path) < len(policy):
            cell = policy[cell]
            path.append(cell)
        self._waypoints = [self.layout.cell_to_xy(c) - self.rng.uniform(0.0, self.jitter, 2) for c in path]
        self._index = 0
        self._since_progress = 0

    def act(self, position, velocity) -> tuple[np.ndarray, bool]:
        reached = float(np.linalg.norm(position - self._target)) < self.solve_thresh
        if reached or self._index >= len(self._waypoints):
            waypoint = self._target
        else:
            waypoint = self._waypoints[self._index]
            if np.linalg.norm(position - waypoint) < self.solve_thresh:
                self._index += 1
                self._since_progress = 0
        self._since_progress += 1
        if self._since_progress > self.replan_after and not reached:
            self._plan(position, self.layout.xy_to_cell(self._target))
        action = self.p_gain * (waypoint - position) + self.d_gain * velocity
        return np.clip(action, -1.0, 1.0), reached


class PointMaze2D(gym.Env):
    """D4RL-style maze2d on Gymnasium-Robotics' PointMaze physics, flat observations.

    Observation [4] (x, y, vx, vy), or [6] with the goal appended (x, y, vx, vy, gx, gy) when
    ``goal_in_obs``. Reward 1.0 at every step whose resulting position is within 0.5 of the
    goal, 0 otherwise; never terminates on reaching the goal (D4RL maze2d); ``info["success"]``
    is True at steps inside the radius. Episode length is set by the TimeLimit of the factory.

    ``start``: "random" (a random open cell, D4RL) or "fixed" (one fixed cell);
    ``goal``: "fixed" (D4RL's goal cell) or "random" (a random open cell other than the start).
    Starts are the cell centre + U(-0.1, 0.1), initial velocity N(0, 0.1) (D4RL's reset).
    """
    metadata = {"render_modes": []}

    def __init__(self, maze: str = "umaze", start: str = "random", goal: str = "fixed", goal_in_obs: bool = False):
        from gymnasium_robotics.envs.maze.point_maze import PointMazeEnv

        self.layout = maze_layout(maze)
        if start not in ("random", "fixed") or goal not in ("random", "fixed"):
            raise ValueError(f"start/goal must be 'random' or 'fixed', got {start!r}/{goal!r}")
        self.start_mode, self.goal_mode, self.goal_in_obs = start, goal, goal_in_obs
        # The gymnasium env is used only for its MuJoCo model; goals and resets are handled here.
        self._maze_env = PointMazeEnv(maze_map=self.layout.gymnasium_map(), continuing_task=True)
        remove_maze_xml(self._maze_env)
        self._point = self._maze_env.point_env
        self.fixed_start_cell = _farthest_cell(self.layout, self.layout.goal_cell)
        dim = 6 if goal_in_obs else 4
        self.observation_space = spaces.Box(-np.inf, np.inf, (dim,), np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.goal_xy = self.layout.cell_to_xy(self.layout.goal_cell)

    def _obs(self, point_obs) -> np.ndarray:
        obs = np.concatenate([point_obs, self.goal_xy]) if self.goal_in_obs else point_obs
        return obs.astype(np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        rng = self.np_random
        cells = self.layout.open_cells
        start = self.fixed_start_cell if self.start_mode == "fixed" else cells[rng.integers(len(cells))]
        if self.goal_mode == "fixed":
            goal = self.layout.goal_cell
        else:
            others = [c for c in cells if c != start]
            goal = others[rng.integers(len(others))]
        self.goal_xy = self.layout.cell_to_xy(goal)
        qpos = self.layout.cell_to_xy(start) + rng.uniform(-0.1, 0.1, 2)
        qvel = rng.normal(0.0, 0.1, 2)
        self._point.set_state(qpos, qvel)
        self._maze_env.goal = self.goal_xy.copy()
        point_obs = np.concatenate([qpos, qvel])
        return self._obs(point_obs), {"success": False, "goal": self.goal_xy.copy()}

    def step(self, action):
        point_obs, *_ = self._point.step(np.asarray(action, np.float64))
        inside = bool(np.linalg.norm(point_obs[:2] - self.goal_xy) <= REWARD_RADIUS)
        return self._obs(point_obs), float(inside), False, False, {"success": inside, "goal": self.goal_xy.copy()}

    def close(self):
        self._maze_env.close()


def _farthest_cell(layout: MazeLayout, cell) -> tuple[int, int]:
    """The open cell with the longest shortest path to ``cell`` (the paper-text variant's fixed start)."""
    dist = layout.path_lengths_from(cell)
    return max(dist, key=lambda c: (dist[c], c))


def make_maze2d_env(maze: str = "umaze", variant: str = "d4rl", horizon: int | None = None) -> gym.Env:
    """Maze2D evaluation env.

    variant "d4rl" (default): D4RL's fixed goal cell, random start cell, obs [4].
    variant "paper_text": the paper's text (l.639): fixed start (the open cell farthest from D4RL's
    goal), random goal, goal appended to the obs ([6]) since a 4-dim obs could not tell the agent
    where the goal is. Not the default: the copied baseline numbers used D4RL's protocol.
    variant "goal_in_obs": D4RL's protocol with the (fixed) goal appended to the obs ([6]), for agents
    trained goal-conditioned on the Multi2D relabelling of the same data (maze2d-*-goal datasets).
    """
    if variant == "d4rl":
        env = PointMaze2D(maze, start="random", goal="fixed")
    elif variant == "goal_in_obs":
        env = PointMaze2D(maze, start="random", goal="fixed", goal_in_obs=True)
    elif variant == "paper_text":
        env = PointMaze2D(maze, start="fixed", goal="random", goal_in_obs=True)
    else:
        raise ValueError(f"unknown maze2d variant {variant!r}; expected 'd4rl', 'goal_in_obs' or 'paper_text'")
    return gym.wrappers.TimeLimit(env, max_episode_steps=horizon or HORIZONS[maze])


def make_multi2d_env(maze: str = "umaze", horizon: int | None = None) -> gym.Env:
    """Multi2D evaluation env: random start and random goal cell per episode, obs [6] with the goal."""
    env = PointMaze2D(maze, start="random", goal="random", goal_in_obs=True)
    return gym.wrappers.TimeLimit(env, max_episode_steps=horizon or HORIZONS[maze])


# ----------------------------------------------------------------------------------- generation

def maze2d_stream(maze: str, num_steps: int, seed: int, episode_steps: int | None = None,
                  action_noise: float = 0.5, progress: bool = True):
    """Yield Minari episode dicts of D4RL's maze2d data stream.

    One continuing stream (as D4RL's generate_maze2d_datasets.py): the noisy controller drives to
    a random target (a random open cell + U(-0.1, 0.1)); on reaching it, or when it has chased one
    target for the env's horizon (D4RL's timeout, max_episode_steps = 300 / 600 / 800), a new
    target is drawn and the ball keeps going. The stream is stored as consecutive Minari episodes
    of ``episode_steps`` (default: the horizon) steps, truncations=True at each cut, each episode
    starting where the previous one ended; the cuts do not touch the stream.
    Rewards: sparse to the FIXED evaluation goal (1 if the position after the step is within 0.5).
    ``infos["goal"]`` [T+1, 2]: the target the controller drives to when acting at that observation.
    """
    from tqdm import tqdm

    env = PointMaze2D(maze, start="random", goal="fixed")
    layout = env.layout
    episode_steps = episode_steps or HORIZONS[maze]
    rng = np.random.default_rng(seed)
    controller = WaypointController(layout, rng)
    obs, _ = env.reset(seed=seed)
    obs = obs.astype(np.float64)
    cells = layout.open_cells

    def new_target(position):
        target = layout.cell_to_xy(cells[rng.integers(len(cells))]) + rng.uniform(-0.1, 0.1, 2)
        controller.set_target(position, target)
        return target

    target, target_age = new_target(obs[:2]), 0
    bar = tqdm(total=num_steps, desc=f"maze2d-{maze}", unit="step", disable=not progress, mininterval=1.0)
    done_steps = 0
    while done_steps < num_steps:
        length = min(episode_steps, num_steps - done_steps)
        observations = np.zeros((length + 1, 4), np.float32)
        goals = np.zeros((length + 1, 2), np.float32)
        actions = np.zeros((length, 2), np.float32)
        rewards = np.zeros(length, np.float32)
        for t in range(length):
            action, reached = controller.act(obs[:2], obs[2:])
            if reached or target_age >= HORIZONS[maze]:
                target, target_age = new_target(obs[:2]), 0
                action, _ = controller.act(obs[:2], obs[2:])
            target_age += 1
            observations[t], goals[t] = obs, target
            action = np.clip(action + rng.normal(0.0, action_noise, 2), -1.0, 1.0)
            obs, reward, *_ = env.step(action)
            obs = obs.astype(np.float64)
            actions[t], rewards[t] = action, reward
        observations[length], goals[length] = obs, target
        truncations = np.zeros(length, bool)
        truncations[-1] = True
        yield {"observations": observations, "actions": actions, "rewards": rewards,
               "terminations": np.zeros(length, bool), "truncations": truncations,
               "infos": {"goal": goals}}
        done_steps += length
        bar.update(length)
    bar.close()


def generate_maze2d(minari_id: str, num_steps: int, seed: int, maze: str = "umaze",
                    episode_steps: int | None = None, action_noise: float = 0.5, progress: bool = True):
    """Write D4RL's maze2d data for ``maze`` as the Minari dataset ``minari_id``; returns its path."""
    from suites.minari_io import write_episodes

    layout = maze_layout(maze)
    episode_steps = episode_steps or HORIZONS[maze]
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    return write_episodes(
        minari_id, maze2d_stream(maze, num_steps, seed, episode_steps, action_noise, progress),
        obs_space, act_space,
        description=(f"maze2d-{maze} by D4RL's recipe on Gymnasium-Robotics PointMaze physics: "
                     f"{num_steps} steps of one continuing stream cut every {episode_steps} steps; "
                     f"sparse reward to the fixed goal {layout.cell_to_xy(layout.goal_cell).tolist()}"),
        metadata={"maze": maze, "seed": seed, "action_noise": action_noise, "episode_steps": episode_steps,
                  "goal_xy": layout.cell_to_xy(layout.goal_cell).tolist()},
    )


def add_goal_to_observations(dataset):
    """Multi2D transform: OfflineDataset [N, 4] -> OfflineDataset [N, 6] (x, y, vx, vy, gx, gy).

    The goal of each step is the target the data controller was driving to (``infos["goal"]`` of
    the maze2d Minari dataset, read back through ``dataset.name``); rewards are relabelled sparse
    to that goal (1 if the next position is within 0.5 of it). This is Diffuser's multi2d use of
    the same data: a trajectory is a demonstration of reaching the goal it was aimed at.
    """
    from suites.dataset import OfflineDataset
    from suites.minari_io import open_local

    source = open_local(dataset.name)
    observations, rewards = [], []
    for episode in source.iterate_episodes():
        goals = np.asarray(episode.infos["goal"], np.float32)[:-1]
        obs = np.asarray(episode.observations, np.float32)
        observations.append(np.concatenate([obs[:-1], goals], axis=1))
        rewards.append((np.linalg.norm(obs[1:, :2] - goals, axis=1) <= REWARD_RADIUS).astype(np.float32))
    observations = np.concatenate(observations)
    if len(observations) != dataset.num_transitions:
        raise ValueError(f"{dataset.name}: {len(observations)} goal rows for {dataset.num_transitions} transitions")
    return OfflineDataset(
        name=dataset.name, observations=observations, actions=dataset.actions,
        rewards=np.concatenate(rewards), terminals=dataset.terminals, timeouts=dataset.timeouts,
        episode_starts=dataset.episode_starts, gamma=dataset.gamma,
        action_low=dataset.action_low, action_high=dataset.action_high)
