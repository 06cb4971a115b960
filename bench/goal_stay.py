"""Why a MAGE agent that reaches the maze2d goal stays in one seed and leaves in another, along its own episodes.

    python bench/goal_stay.py RUN_DIR... --episodes 50 --variant critic+decoder:base+samples:16:q_mean \
        --out results/reproduced/maze2d-cpu-umaze5/diagnostics/goal-stay.json

Each MAGE run (final checkpoint.pt) acts under ``--variant`` (bench/mage_leads.py's variants; it must rank
``samples:n:q`` or ``q_mean`` candidates) on the harness's evaluation episodes; a run of another method (IQL,
the reference that stays) acts as trained and gets the figures that need no candidates. At every step where the
ball is within the reward radius of the goal, the n candidate first actions the generator offered and
their stage-0 Q are compared with the *stay action*: the data's own waypoint controller aimed at the goal,
a* = clip(10 (g - x) - v) (suites/mazes.py), which holds the ball at g. Per run it prints:

- goal steps: steps spent within the radius, per episode that reached it, and how many of those
  episodes left it again (were outside the radius at the end);
- stay-like candidates: the share of candidates whose action is within 0.5 of a* (Euclidean, in the
  action box [-1, 1]^2): what the generator offers at the goal; "none stay-like": the share of goal
  steps where no candidate is;
- their Q weight: the q_mean weight (softmax of beta * Q) those candidates carry, against their
  share: whether the critic prefers them (weight > share) or not;
- acted error: |a_acted - a*| of the action taken, and the ball's speed at the goal.

A seed that leaves with few stay-like candidates loses the signal in the generator; one that leaves with
stay-like candidates that Q down-weights loses it in the critic.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mage.policy as policy  # noqa: E402
from bench.mage_leads import load_run, variant_agent  # noqa: E402

STAY_DISTANCE = 0.5          # "stay-like": an action within this of the stay action (a quarter of the box's side)
P_GAIN, D_GAIN = 10.0, -1.0  # suites/mazes.py WaypointController: the data's controller


def stay_action(xy_B2: np.ndarray, v_B2: np.ndarray, goal_2: np.ndarray) -> np.ndarray:
    """[B, 2] the data's controller aimed at the goal, clipped to the action box."""
    return np.clip(P_GAIN * (goal_2 - xy_B2) + D_GAIN * v_B2, -1.0, 1.0)


class CandidateLog:
    """Records, per act call, the candidates' first actions (env units) [N, B, A] and their weights [N, B]."""

    def __init__(self, agent):
        self.agent, self.calls = agent, []
        original = policy.candidate_plans

        def recorded(model, s0_BS, R0_B1, n):
            x_hat, first = original(model, s0_BS, R0_B1, n)
            with torch.no_grad():
                q = model.td_value.q(s0_BS.repeat(n, 1), first).view(n, -1)
            weights = policy.q_mean_weights(q, model.cfg.plan_beta, agent.norm.value_scale)
            acts = agent.norm.unact(first.float().cpu().numpy()).reshape(n, s0_BS.shape[0], -1)
            self.calls.append((acts, weights.cpu().numpy()))
            return x_hat, first
        policy.candidate_plans = recorded
        self._restore = lambda: setattr(policy, "candidate_plans", original)

    def close(self) -> None:
        self._restore()


def play(agent, key: str, episodes: int, seed: int):
    """Plays ``episodes`` episodes at once (as suites.evaluation does); returns the per-step records, the goal
    [2] and the episodes' normalised scores [episodes]."""
    from suites.envs import make_env
    from suites.registry import dataset_spec
    import gymnasium as gym

    spec = dataset_spec(key)
    envs = gym.vector.SyncVectorEnv([lambda: make_env(spec) for _ in range(episodes)])
    obs, info = envs.reset(seed=[seed + i for i in range(episodes)])
    goal = np.asarray(info["goal"][0], np.float64)
    agent.reset(episodes)
    log = CandidateLog(agent) if getattr(getattr(agent, "cfg", None), "plan_samples", 1) > 1 else None
    steps, alive, returns = [], np.ones(episodes, bool), np.zeros(episodes)
    try:
        for _ in range(int(spec.horizon)):
            action = agent.act(obs)
            acts, weights = log.calls[-1] if log is not None else (None, None)
            steps.append({"obs": obs.copy(), "action": action.copy(), "cands": acts, "weights": weights,
                          "alive": alive.copy()})
            obs, reward, terminated, truncated, _ = envs.step(action)
            done = terminated | truncated
            agent.observe(reward, done)
            returns += reward * alive
            alive &= ~done
            if not alive.any():
                break
    finally:
        if log is not None:
            log.close()
        envs.close()
    return steps, goal, 100.0 * (returns - spec.ref_min) / (spec.ref_max - spec.ref_min)


def goal_stay_figures(steps: list[dict], goal: np.ndarray, radius: float) -> dict:
    at_goal_T_B = np.stack([(np.linalg.norm(s["obs"][:, :2] - goal, axis=1) <= radius) & s["alive"] for s in steps])
    reached = at_goal_T_B.any(0)
    final_in = at_goal_T_B[-1]
    share, weight, acted, speed = [], [], [], []
    for t, s in enumerate(steps):
        b = np.flatnonzero(at_goal_T_B[t])
        if not len(b):
            continue
        target = stay_action(s["obs"][b, :2], s["obs"][b, 2:4], goal)               # [b, 2]
        if s["cands"] is not None:
            stay_like = np.linalg.norm(s["cands"][:, b] - target[None], axis=-1) <= STAY_DISTANCE   # [N, b]
            share.append(stay_like.mean(0))
            weight.append((s["weights"][:, b] * stay_like).sum(0))
        acted.append(np.linalg.norm(s["action"][b] - target, axis=-1))
        speed.append(np.linalg.norm(s["obs"][b, 2:4], axis=1))
    share, weight, acted, speed = (np.concatenate(xs) if xs else np.zeros(0) for xs in (share, weight, acted, speed))
    return {"episodes_reaching": int(reached.sum()), "left_again": int((reached & ~final_in).sum()),
            "goal_steps_per_reaching_episode": float(at_goal_T_B.sum() / max(1, reached.sum())),
            "stay_like_share": float(share.mean()) if share.size else None,
            "stay_like_q_weight": float(weight.mean()) if weight.size else None,
            "no_stay_like_candidate": float((share == 0).mean()) if share.size else None,
            "acted_error": float(acted.mean()) if acted.size else None,
            "speed_at_goal": float(speed.mean()) if speed.size else None}


def main() -> None:
    from harness.runs import eval_seed
    from suites.mazes import REWARD_RADIUS
    from suites.registry import load_offline_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--variant", default="critic+decoder:base+samples:16:q_mean")
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if "samples:" not in args.variant:
        raise SystemExit("goal_stay: the variant must act on sampled candidates (samples:n:q or samples:n:q_mean)")
    torch.set_num_threads(1)
    rows = []
    for run_dir in args.runs:
        agent, info = load_run(run_dir)
        variant = args.variant if info["method"] == "mage" else "as trained"
        if info["method"] == "mage":
            data = load_offline_dataset(info["dataset"], info.get("data_profile") or info["profile"])
            agent = variant_agent(agent, args.variant, data, 2000, info["seed"])
        steps, goal, normalized = play(agent, info["dataset"], args.episodes, eval_seed(info["seed"]))
        row = {"run": run_dir.name, "method": info["method"], "seed": info["seed"], "variant": variant,
               "score": float(normalized.mean()),
               **goal_stay_figures(steps, goal, REWARD_RADIUS)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
