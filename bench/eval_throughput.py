"""Environment steps per second of evaluation: the vector env of ``suites.evaluation`` against a
plain loop over one env. 100 Gymnasium-Robotics PointMaze_Large-v3 episodes, random policy,
maze2d-large's horizon (800 steps).

    python bench/eval_throughput.py [--episodes 100] [--chunk-sizes 100,8]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

from suites.envs import make_env
from suites.evaluation import RandomAgent, evaluate_spec
from suites.registry import dataset_spec


def pointmaze_large_spec():
    """maze2d-large's spec (horizon 800) on the stock PointMaze_Large-v3 env (dict obs flattened)."""
    return dataclasses.replace(dataset_spec("maze2d-large"), env={"id": "PointMaze_Large-v3", "kwargs": {}},
                               success="info")


def vector_rates(spec, episodes: int, chunk_size: int, seed: int = 0) -> tuple[float, float, int]:
    """(wall steps/s, CPU steps/s, steps) of ``evaluate_spec``, env construction included."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = evaluate_spec(RandomAgent(seed), spec, episodes, seed, chunk_size=chunk_size)
    steps = int(result.lengths.sum())
    return steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu), steps


def plain_loop_rates(spec, episodes: int, seed: int = 0) -> tuple[float, float, int]:
    """One env, one episode after another, the same random policy (one action per call)."""
    wall, cpu = time.perf_counter(), time.process_time()
    env = make_env(spec)
    agent = RandomAgent(seed)
    agent.set_action_space(env.action_space)
    steps = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(agent.act(obs[None])[0])
            steps += 1
            done = terminated or truncated
    return steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu), steps


def env_build_cpu_seconds(spec, count: int) -> float:
    """CPU seconds to construct ``count`` envs at once (PointMaze writes and compiles its MuJoCo XML
    per instance), as evaluate_spec does before stepping."""
    started = time.process_time()
    envs = [make_env(spec) for _ in range(count)]
    elapsed = time.process_time() - started
    for env in envs:
        env.close()
    return elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--chunk-sizes", default="100,8", help="vector env widths to time, comma separated")
    args = parser.parse_args(argv)
    spec = pointmaze_large_spec()
    print(f"PointMaze_Large-v3, {args.episodes} episodes x {spec.horizon} steps, random policy. Env steps/s by "
          f"wall clock and by this process's CPU time, env construction included, and by CPU time less the "
          f"CPU time of constructing as many envs (measured just before)")

    def report(label: str, wall: float, cpu: float, steps: int, envs: int) -> None:
        build = env_build_cpu_seconds(spec, envs)
        stepping = steps / max(steps / cpu - build, 1e-9)
        print(f"  {label:24s}: {wall:7.0f} wall  {cpu:7.0f} CPU  {stepping:7.0f} CPU w/o construction "
              f"({steps} steps; construction {build:.1f} CPU s)")

    report("plain loop, 1 env", *plain_loop_rates(spec, args.episodes), envs=1)
    for chunk in (int(c) for c in args.chunk_sizes.split(",")):
        report(f"SyncVectorEnv, {chunk} envs", *vector_rates(spec, args.episodes, chunk), envs=chunk)


if __name__ == "__main__":
    main()
