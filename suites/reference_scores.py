"""Re-measure Maze2D / Multi2D reference scores by D4RL's recipe.

D4RL's min is the mean return of a uniformly random policy, its max the mean return of the
expert waypoint controller (no action noise), each over the evaluation env's horizon. Our physics
(Gymnasium-Robotics PointMaze) differ from D4RL's, so the values are re-measured here and stored
in suites/maze2d.yaml and suites/multi2d.yaml as ref_min / ref_max.

    python -m suites.reference_scores [--episodes 100] [--seed 0] [--write suites/reference_scores.json]
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from suites.mazes import MAZES, WaypointController, make_maze2d_env, make_multi2d_env


def episode_returns(env, policy: str, episodes: int, seed: int) -> np.ndarray:
    """[episodes] float64 returns of ``policy`` ("random" | "expert") on ``env``."""
    unwrapped = env.unwrapped
    env.action_space.seed(seed)
    returns = np.zeros(episodes)
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        controller = WaypointController(unwrapped.layout, np.random.default_rng(seed + ep))
        controller.set_target(obs[:2].astype(np.float64), unwrapped.goal_xy)
        done = False
        while not done:
            if policy == "random":
                action = env.action_space.sample()
            else:
                action, _ = controller.act(obs[:2].astype(np.float64), obs[2:4].astype(np.float64))
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[ep] += reward
            done = terminated or truncated
    return returns


def measure(episodes: int = 100, seed: int = 0) -> dict:
    """{"maze2d-umaze": {"min": .., "max": .., "min_se": .., "max_se": .., "episodes": ..}, ...}."""
    scores = {}
    for suite, factory in (("maze2d", make_maze2d_env), ("multi2d", make_multi2d_env)):
        for maze in MAZES:
            env = factory(maze)
            low = episode_returns(env, "random", episodes, seed)
            high = episode_returns(env, "expert", episodes, seed)
            env.close()
            scores[f"{suite}-{maze}"] = {
                "min": round(float(low.mean()), 2), "max": round(float(high.mean()), 2),
                "min_se": round(float(low.std(ddof=1) / np.sqrt(episodes)), 2),
                "max_se": round(float(high.std(ddof=1) / np.sqrt(episodes)), 2),
                "episodes": episodes, "seed": seed}
            print(f"{suite}-{maze}: min {scores[f'{suite}-{maze}']['min']}  max {scores[f'{suite}-{maze}']['max']}",
                  flush=True)
    return scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", default=None, help="also write the scores as JSON to this path")
    args = parser.parse_args(argv)
    if args.episodes < 2:
        print("--episodes must be at least 2", file=sys.stderr)
        return 2
    scores = measure(args.episodes, args.seed)
    if args.write:
        with open(args.write, "w") as f:
            json.dump(scores, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
