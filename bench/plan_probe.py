"""The plans of a trained MAGE at chosen states over a range of R_0: does the return condition steer them?

    python bench/plan_probe.py results/runs/<mage run id> [--targets 0 0.27 0.5 0.71 1 1.5] [--states JSON]

At each probe state and each normalised R_0 (1 = the data's largest return-to-go) it prints the plan's
x, y at steps 1, H/3 and H - 1 (decoded by the run's plan_decoder) and the first action (its inverse
head), beside the R_0 that the run's own target rule asks for there. On the coin maze the default probe
states are the start, the cell beside the silver coin, and the row-7 junction holding the silver coin
(where the gold coin lies left and the goal right); elsewhere pass ``--states`` as a JSON list of raw
observations. What it showed on the coin maze is in bench/README.md ("Issue 15" G).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mage.agent import MageAgent  # noqa: E402
from mage.policy import generate, plan_actions  # noqa: E402

DEFAULT_TARGETS = (0.0, 0.27, 0.5, 0.71, 1.0, 1.5)   # 0.27 / 0.71: the data's RTG of the direct route / full tour from S


def coin_maze_probe_states() -> dict[str, np.ndarray]:
    """Named raw coin-maze observations [6]: (x, y, silver held, gold held, goal x, goal y), goal = G."""
    from suites.coinmaze import COIN_MAZE

    goal = COIN_MAZE.goal_xy
    return {"start S": np.array([*COIN_MAZE.start_xy, 0, 0, *goal], np.float32),
            "beside the silver coin": np.array([3.5, 3.5, 0, 0, *goal], np.float32),
            "row-7 junction, silver held": np.array([3.5, 1.5, 1, 0, *goal], np.float32)}


@torch.no_grad()
def probe(agent: MageAgent, obs_NO: np.ndarray, targets: tuple[float, ...]) -> dict[str, np.ndarray]:
    """Plans at each of N raw observations for each of T normalised targets R_0.

    Returns plan_NTHS (the decoded plan's states, raw units), action_NTA (the first action, raw units) and
    trained_target_N (the normalised R_0 of the run's own target rule at each state, as acting starts)."""
    model, norm = agent.model.eval(), agent.norm
    N, T = len(obs_NO), len(targets)
    s0_BS = torch.as_tensor(norm.obs(np.repeat(np.asarray(obs_NO, np.float32), T, axis=0)), device=agent.device)
    R0_B1 = torch.as_tensor(np.tile(np.asarray(targets, np.float32), N)[:, None], device=agent.device)
    _, _, f_hat = generate(model, model.condition(s0_BS, R0_B1))
    plan_BHS = model.plan_window(f_hat, s0_BS, R0_B1).float()[:, :, model.layout.states].cpu().numpy()
    action_BA = plan_actions(model, s0_BS, R0_B1, 1)[:, 0].float().cpu().numpy()
    agent.reset(N)
    trained = agent._acting_target(s0_BS[::T])[:, 0].cpu().numpy()
    plan = plan_BHS * norm.obs_std + norm.obs_mean
    return {"plan_NTHS": plan.reshape(N, T, *plan.shape[1:]),
            "action_NTA": norm.unact(action_BA).reshape(N, T, -1),
            "trained_target_N": trained}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="results/runs/<run id> of a finished MAGE run")
    ap.add_argument("--targets", type=float, nargs="+", default=list(DEFAULT_TARGETS))
    ap.add_argument("--states", help="JSON list of raw observations (default on the coin maze: the three probe states)")
    args = ap.parse_args()
    info_path, checkpoint_path = args.run_dir / "result.json", args.run_dir / "checkpoint.pt"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    if info.get("method") != "mage" or not checkpoint_path.exists():
        raise SystemExit(f"plan_probe: {args.run_dir} is not a finished MAGE run (result.json, checkpoint.pt)")
    if args.states:
        named = {f"state {i}": np.asarray(s, np.float32) for i, s in enumerate(json.loads(args.states))}
    elif info["dataset"].startswith("coinmaze"):
        named = coin_maze_probe_states()
    else:
        raise SystemExit("plan_probe: pass --states (a JSON list of raw observations) for a suite other than the coin maze")
    agent = MageAgent(seed=info["seed"])
    agent.load_state_dict(torch.load(checkpoint_path, weights_only=False)["agent"])
    out = probe(agent, np.stack(list(named.values())), tuple(args.targets))
    H = out["plan_NTHS"].shape[2]
    steps = (1, H // 3, H - 1)
    for i, name in enumerate(named):
        print(f"{name} {named[name][:4].tolist()}: the run's target rule asks R_0 = {out['trained_target_N'][i]:.2f}")
        for j, R0 in enumerate(args.targets):
            xy = "  ".join(f"t{t} ({out['plan_NTHS'][i, j, t, 0]:.2f}, {out['plan_NTHS'][i, j, t, 1]:.2f})" for t in steps)
            a = out["action_NTA"][i, j]
            print(f"  R_0 {R0:4.2f}: plan {xy}   first action ({a[0]:+.2f}, {a[1]:+.2f})")


if __name__ == "__main__":
    main()
