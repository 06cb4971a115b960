"""The coin maze of the paper's Figures 1, 3 and 4 (our own small environment; the paper gives no code).

A point moves in a grid maze (cells of width 1, walls are whole cells). The task: from the start,
collect the silver coin, then the gold coin, then reach the goal. Rewards: +1 for the silver
coin, +1 for the gold coin once the silver one is held (the order matters), +1 for reaching the
goal, which ends the episode; success = goal reached holding both coins. The coins sit at fixed
places that the observation does not reveal (paper, l.773); only the collected flags are observed.

Observation [6] float32: (x, y, silver collected, gold collected, goal x, goal y); x right, y up,
origin at the maze's bottom-left corner, in cells. Action [2] in [-1, 1]: velocity; one step moves
by ``STEP_SIZE * action``; a move into a wall is cancelled per axis (the point slides along walls).

``COIN_MAZE`` holds the layout (walls, coins, start, goal) for plotting trajectories (figures).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cached_property, lru_cache

import gymnasium as gym
import numpy as np
from gymnasium import spaces

STEP_SIZE = 0.2          # cells per step at full action
BODY_RADIUS = 0.15       # the point's radius for wall collisions, in cells
PICKUP_RADIUS = 0.35     # a coin / the goal is reached within this distance of its cell centre
HORIZON = 250            # evaluation episode length; the scripted full tour from S takes ~80 steps

# '#' wall, '.' open, 'S' start, 's' silver coin, 'g' gold coin, 'G' goal (all four are open cells).
# Two routes lead from S to G: the shortest (12 cells) down the left corridor, which passes one cell from
# the silver coin and two from the gold one, and a longer one (18 cells) on the right; the tour detours into both.
COIN_MAZE_MAP = (
    "#########",
    "#S..#...#",
    "#.#.#.#.#",
    "#.#...#.#",
    "#.#####.#",
    "#...s#..#",
    "###.##.##",
    "#g.....G#",
    "#########",
)


@dataclass(frozen=True)
class CoinMazeLayout:
    rows: tuple[str, ...]

    @cached_property
    def walls(self) -> np.ndarray:
        """[H, W] bool, row 0 = top row."""
        return np.array([[ch == "#" for ch in row] for row in self.rows])

    def _find(self, mark: str) -> tuple[int, int]:
        return next((i, j) for i, row in enumerate(self.rows) for j, ch in enumerate(row) if ch == mark)

    @cached_property
    def open_cells(self) -> list[tuple[int, int]]:
        h, w = self.walls.shape
        return [(i, j) for i in range(h) for j in range(w) if not self.walls[i, j]]

    @cached_property
    def free_cells(self) -> list[tuple[int, int]]:
        """Open cells without a coin: where random starts and goals may be."""
        return [c for c in self.open_cells if self.rows[c[0]][c[1]] not in "sg"]

    def cell_to_xy(self, cell) -> np.ndarray:
        """[2] centre of a (row, col) cell."""
        return np.array([cell[1] + 0.5, self.walls.shape[0] - cell[0] - 0.5])

    def xy_to_cell(self, xy) -> tuple[int, int]:
        return int(self.walls.shape[0] - np.floor(xy[1]) - 1), int(np.floor(xy[0]))

    @cached_property
    def start_xy(self) -> np.ndarray:
        return self.cell_to_xy(self._find("S"))

    @cached_property
    def silver_xy(self) -> np.ndarray:
        return self.cell_to_xy(self._find("s"))

    @cached_property
    def gold_xy(self) -> np.ndarray:
        return self.cell_to_xy(self._find("g"))

    @cached_property
    def goal_xy(self) -> np.ndarray:
        return self.cell_to_xy(self._find("G"))

    def wall_rectangles(self) -> list[tuple[float, float]]:
        """Bottom-left corners (x, y) of the unit wall squares, for plotting."""
        h = self.walls.shape[0]
        return [(float(j), float(h - i - 1)) for i, j in zip(*np.nonzero(self.walls))]

    def blocked(self, xy) -> bool:
        """True if a disc of BODY_RADIUS at ``xy`` overlaps a wall cell."""
        for dx in (-BODY_RADIUS, BODY_RADIUS):
            for dy in (-BODY_RADIUS, BODY_RADIUS):
                i, j = self.xy_to_cell((xy[0] + dx, xy[1] + dy))
                if self.walls[i, j]:
                    return True
        return False

    @lru_cache(maxsize=None)   # noqa: B019 - layouts are few and frozen; the scripts ask every step
    def next_cell_towards(self, cell, target) -> tuple[int, int]:
        """The first cell on a shortest path from ``cell`` to ``target`` (BFS)."""
        parents = {target: None}
        queue = deque([target])
        while queue:
            c = queue.popleft()
            if c == cell:
                break
            i, j = c
            for n in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
                if not self.walls[n] and n not in parents:
                    parents[n] = c
                    queue.append(n)
        return parents.get(cell) or target


COIN_MAZE = CoinMazeLayout(COIN_MAZE_MAP)


def draw_coin_maze(ax, layout: CoinMazeLayout = COIN_MAZE) -> None:
    """Draw walls (dark squares), coins and the start/goal on a matplotlib axis."""
    from matplotlib.patches import Rectangle

    for x, y in layout.wall_rectangles():
        ax.add_patch(Rectangle((x, y), 1, 1, color="0.25"))
    ax.scatter(*layout.silver_xy, s=200, c="silver", edgecolors="k", zorder=3, label="silver coin")
    ax.scatter(*layout.gold_xy, s=200, c="gold", edgecolors="k", zorder=3, label="gold coin")
    ax.scatter(*layout.start_xy, s=120, marker="s", c="tab:blue", zorder=3, label="start")
    ax.scatter(*layout.goal_xy, s=200, marker="*", c="tab:green", zorder=3, label="goal")
    h, w = layout.walls.shape
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.set_aspect("equal")


class CoinMazeEnv(gym.Env):
    """Start -> silver coin -> gold coin -> goal. See the module docstring for spaces and rewards.

    ``random_start_goal``: start and goal drawn from the open cells (the dataset's setting) instead
    of the map's fixed S and G (the evaluation setting, as in the paper's figures).
    """
    metadata = {"render_modes": []}

    def __init__(self, random_start_goal: bool = False, layout: CoinMazeLayout = COIN_MAZE):
        self.layout = layout
        self.random_start_goal = random_start_goal
        h, w = layout.walls.shape
        self.observation_space = spaces.Box(np.array([0, 0, 0, 0, 0, 0], np.float32),
                                            np.array([w, h, 1, 1, w, h], np.float32))
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.position = layout.start_xy
        self.goal_xy = layout.goal_xy
        self.silver = self.gold = False

    def _obs(self) -> np.ndarray:
        return np.array([*self.position, self.silver, self.gold, *self.goal_xy], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.random_start_goal:
            cells = self.layout.free_cells
            start, goal = self.np_random.choice(len(cells), 2, replace=False)
            self.position, self.goal_xy = self.layout.cell_to_xy(cells[start]), self.layout.cell_to_xy(cells[goal])
        else:
            self.position, self.goal_xy = self.layout.start_xy, self.layout.goal_xy
        self.position = self.position + self.np_random.uniform(-0.1, 0.1, 2)
        self.silver = self.gold = False
        return self._obs(), {"success": False, "silver": False, "gold": False}

    def step(self, action):
        move = STEP_SIZE * np.clip(np.asarray(action, np.float64), -1.0, 1.0)
        for axis in (0, 1):     # per-axis so the point slides along walls
            candidate = self.position.copy()
            candidate[axis] += move[axis]
            if not self.layout.blocked(candidate):
                self.position = candidate
        reward = 0.0
        if not self.silver and np.linalg.norm(self.position - self.layout.silver_xy) <= PICKUP_RADIUS:
            self.silver, reward = True, reward + 1.0
        if self.silver and not self.gold and np.linalg.norm(self.position - self.layout.gold_xy) <= PICKUP_RADIUS:
            self.gold, reward = True, reward + 1.0
        at_goal = bool(np.linalg.norm(self.position - self.goal_xy) <= PICKUP_RADIUS)
        reward += float(at_goal)
        info = {"success": at_goal and self.silver and self.gold, "silver": self.silver, "gold": self.gold}
        return self._obs(), reward, at_goal, False, info


def make_coinmaze_env(random_start_goal: bool = False, horizon: int = HORIZON) -> gym.Env:
    """Evaluation env: fixed start S and goal G, ``horizon`` steps."""
    return gym.wrappers.TimeLimit(CoinMazeEnv(random_start_goal), max_episode_steps=horizon)


# Scripted behaviours of the dataset: which coins an episode visits before the goal, and how often.
# Few episodes do the whole tour, so a return-conditioned learner has to stitch the pieces.
BEHAVIOURS = {"silver_gold": 0.1, "silver": 0.3, "gold": 0.3, "direct": 0.3}


def scripted_episode(env: CoinMazeEnv, rng: np.random.Generator, behaviour: str, max_steps: int,
                     action_noise: float = 0.3, gain: float = 4.0) -> dict:
    """One episode of a waypoint-following script: BFS cell path to each stop, P control + N(0, noise)."""
    layout = env.layout
    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    stops = {"silver_gold": [layout.silver_xy, layout.gold_xy], "silver": [layout.silver_xy],
             "gold": [layout.gold_xy], "direct": []}[behaviour] + [env.goal_xy]
    observations, actions, rewards = [obs], [], []
    terminated = False
    while len(actions) < max_steps and not terminated:
        if np.linalg.norm(env.position - stops[0]) <= PICKUP_RADIUS and len(stops) > 1:
            stops.pop(0)
        here, there = layout.xy_to_cell(env.position), layout.xy_to_cell(stops[0])
        waypoint = stops[0] if here == there else layout.cell_to_xy(layout.next_cell_towards(here, there))
        action = np.clip(gain * (waypoint - env.position) + rng.normal(0.0, action_noise, 2), -1.0, 1.0)
        obs, reward, terminated, _, _ = env.step(action)
        observations.append(obs)
        actions.append(action)
        rewards.append(reward)
    length = len(actions)
    terminations = np.zeros(length, bool)
    terminations[-1] = terminated
    return {"observations": np.array(observations, np.float32), "actions": np.array(actions, np.float32),
            "rewards": np.array(rewards, np.float32), "terminations": terminations,
            "truncations": ~terminations & (np.arange(length) == length - 1),
            "infos": {"behaviour": np.full(length + 1, list(BEHAVIOURS).index(behaviour), np.int64)}}


def coinmaze_episodes(num_steps: int, seed: int, max_steps: int = HORIZON, progress: bool = True):
    """Yield scripted episodes (random start and goal) until ``num_steps`` transitions; the last is cut short."""
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    env = CoinMazeEnv(random_start_goal=True)
    names, weights = list(BEHAVIOURS), np.array(list(BEHAVIOURS.values()))
    produced = 0
    with tqdm(total=num_steps, desc="coinmaze", unit="step", disable=not progress, mininterval=1.0) as bar:
        while produced < num_steps:
            behaviour = names[rng.choice(len(names), p=weights / weights.sum())]
            episode = scripted_episode(env, rng, behaviour, min(max_steps, num_steps - produced))
            produced += len(episode["actions"])
            bar.update(len(episode["actions"]))
            yield episode


def generate_coinmaze(minari_id: str, num_steps: int, seed: int, max_steps: int = HORIZON, progress: bool = True):
    """Write the scripted coin-maze dataset as ``minari_id``."""
    from suites.minari_io import write_episodes

    env = CoinMazeEnv()
    return write_episodes(
        minari_id, coinmaze_episodes(num_steps, seed, max_steps, progress), env.observation_space, env.action_space,
        description=("coin maze (paper Figs. 1, 3, 4): scripted noisy waypoint followers from random starts to random "
                     f"goals, visiting silver+gold / silver / gold / no coins with weights {BEHAVIOURS}"),
        metadata={"seed": seed, "behaviours": BEHAVIOURS, "max_steps": max_steps},
    )
