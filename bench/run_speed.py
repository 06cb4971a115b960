"""How long one harness run of a method takes under a profile, measured before planning a sweep.

Trains the method's real agent on the real dataset with the profile's config for at most
``--seconds`` (its training steps per second, per 1,000-step window, so stages show), then times one
evaluation of ``--episodes`` episodes (the run's final evaluation is eval_episodes of them, its
periodic ones periodic_episodes each), and prints the projected wall time of the whole run:
training steps / rate + the evaluations. One process, alone on its device; runs that share a
device (``--workers``) are slower, so leave a margin.

    python bench/run_speed.py mage maze2d-umaze --profile h100-budget --device cuda --seconds 60
    python bench/run_speed.py iql maze2d-umaze --profile smoke --seconds 5
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from harness.config import resolve_config  # noqa: E402
from harness.methods import build_agent  # noqa: E402
from harness.profiles import load_profile  # noqa: E402
from suites.evaluation import evaluate  # noqa: E402
from suites.registry import dataset_spec, load_offline_dataset  # noqa: E402

WINDOW = 1000   # steps per printed rate


class _TimeUp(Exception):
    pass


def measure(method: str, dataset: str, profile_name: str, device: str, seconds: float, episodes: int) -> dict:
    """Training rate (steps/s) and evaluation seconds of one run of ``method`` on ``dataset``."""
    profile = load_profile(profile_name)
    spec = dataset_spec(dataset)
    config, steps = resolve_config(method, spec, profile.agent_size, {}, {})
    steps = max(1, round(steps * profile.steps_scale))
    data = load_offline_dataset(dataset, profile.data_size)
    agent = build_agent(method, seed=0, device=device)
    started = window_start = time.time()
    done = [0]

    def on_step(step: int, metrics: dict) -> None:
        nonlocal window_start
        done[0] = step
        if step % WINDOW == 0:
            now = time.time()
            print(f"  steps {step - WINDOW}-{step}: {WINDOW / (now - window_start):.1f} steps/s", flush=True)
            window_start = now
        if time.time() - started > seconds:
            raise _TimeUp

    try:
        agent.fit(data, dict(config), steps, on_step)
    except _TimeUp:
        pass
    train_s = time.time() - started
    rate = done[0] / train_s
    started = time.time()
    evaluate(agent, dataset, episodes, seed=0, max_steps=profile.eval_max_steps)
    eval_s = time.time() - started
    evals = (profile.eval_episodes or int(spec.eval_episodes)) + profile.periodic_evals * profile.periodic_episodes
    # an evaluation's time grows with its episode count only up to the vector env's batch; an
    # upper bound: as many evaluations of `episodes` as the run's episodes need
    projected = steps / rate + eval_s * evals / episodes
    return {"steps": steps, "trained": done[0], "rate": rate, "eval_s": eval_s, "projected_s": projected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method")
    parser.add_argument("dataset")
    parser.add_argument("--profile", default="h100-budget")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=60.0, help="training time measured (default 60)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes of the timed evaluation (default 10)")
    args = parser.parse_args()
    print(f"{args.method} on {args.dataset}, profile {args.profile}, {args.device}:", flush=True)
    m = measure(args.method, args.dataset, args.profile, args.device, args.seconds, args.episodes)
    print(f"{args.method} {args.dataset}: {m['trained']} of {m['steps']} steps at {m['rate']:.1f} steps/s; "
          f"evaluation of {args.episodes} episodes {m['eval_s']:.1f} s; whole run about {m['projected_s'] / 60:.1f} min")


if __name__ == "__main__":
    main()
