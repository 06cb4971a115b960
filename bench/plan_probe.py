"""The plans of a trained MAGE at chosen states over a range of R_0: does the return condition steer them?

    python bench/plan_probe.py results/runs/<mage run id> [--targets 0 0.27 0.5 0.71 1 1.5] [--decoder base] [--guidance 3] [--states JSON]

At each probe state and each normalised R_0 (1 = the data's largest return-to-go) it prints the plan's
x, y at steps 1, H/3 and H - 1 (decoded by the run's plan_decoder) and the first action (its inverse
head), beside the R_0 that the run's own target rule asks for there. On the coin maze the default probe
states are the start, the cell beside the silver coin, and the row-7 junction holding the silver coin
(where the gold coin lies left and the goal right), and beside each the data's own choice there: the share
of rows in that cell, holding the same coins, that move left or right over the next 12 steps, and their
mean RTG label (the dataset's discounted RTG, normalised as the run's). Elsewhere pass ``--states`` as a
JSON list of raw observations. What it showed on the coin maze is in bench/README.md ("Issue 15" G).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mage_leads import load_run  # noqa: E402
from mage.agent import MageAgent  # noqa: E402
from mage.config import PLAN_DECODERS  # noqa: E402
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
    action_BA = plan_actions(model, s0_BS, R0_B1, 1, value_scale=norm.value_scale)[:, 0].float().cpu().numpy()
    agent.reset(N)
    trained = agent._acting_target(s0_BS[::T])[:, 0].cpu().numpy()
    plan = plan_BHS * norm.obs_std + norm.obs_mean
    return {"plan_NTHS": plan.reshape(N, T, *plan.shape[1:]),
            "action_NTA": norm.unact(action_BA).reshape(N, T, -1),
            "trained_target_N": trained}


def data_choices(data, state_O: np.ndarray, steps: int, match: tuple[int, ...], rtg_scale: float) -> dict[str, float]:
    """What the data do from ``state_O``'s unit cell: among rows in the same cell (floor of x, y) whose
    features ``match`` equal the state's, and that stay in their episode for ``steps`` more steps, the share
    whose x moves left / right by more than 0.3 over those steps, and the mean normalised RTG label of each."""
    obs = np.asarray(data.observations)
    same = np.all(np.floor(obs[:, :2]) == np.floor(state_O[:2]), axis=1) & np.all(obs[:, list(match)] == state_O[list(match)], axis=1)
    episode_end = np.repeat(data.episode_starts[1:], np.diff(data.episode_starts))
    rows = np.nonzero(same & (np.arange(len(obs)) + steps < episode_end))[0]
    dx = obs[rows + steps, 0] - obs[rows, 0]
    rtg = np.asarray(data.returns_to_go)[rows] / rtg_scale
    out = {"rows": float(len(rows))}
    for side, moved in (("left", dx < -0.3), ("right", dx > 0.3)):
        out[f"{side}_share"] = float(moved.mean()) if len(rows) else float("nan")
        out[f"{side}_rtg"] = float(rtg[moved].mean()) if moved.any() else float("nan")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="results/runs/<run id> of a finished MAGE run")
    ap.add_argument("--targets", type=float, nargs="+", default=list(DEFAULT_TARGETS))
    ap.add_argument("--decoder", choices=PLAN_DECODERS, help="plan_decoder (default: the run's)")
    ap.add_argument("--guidance", type=float, help="classifier-free guidance w (a run trained with rtg_dropout > 0)")
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
    agent, _ = load_run(args.run_dir)
    if args.decoder:
        agent.cfg.plan_decoder = args.decoder
    if args.guidance is not None:
        agent.cfg.guidance = args.guidance
    out = probe(agent, np.stack(list(named.values())), tuple(args.targets))
    data = None
    if info["dataset"].startswith("coinmaze"):
        from suites.registry import load_offline_dataset
        data = load_offline_dataset(info["dataset"], info.get("data_profile") or info["profile"])
    H = out["plan_NTHS"].shape[2]
    steps = (1, H // 3, H - 1)
    for i, name in enumerate(named):
        print(f"{name} {named[name][:4].tolist()}: the run's target rule asks R_0 = {out['trained_target_N'][i]:.2f}")
        if data is not None:   # coin maze: rows in the same cell holding the same coins, 12 steps on
            c = data_choices(data, named[name], 12, (2, 3), agent.norm.rtg_scale)
            print(f"  data ({c['rows']:.0f} rows, 12 steps on): left {c['left_share']:.2f} of rows, RTG {c['left_rtg']:.2f};"
                  f" right {c['right_share']:.2f}, RTG {c['right_rtg']:.2f}")
        for j, R0 in enumerate(args.targets):
            xy = "  ".join(f"t{t} ({out['plan_NTHS'][i, j, t, 0]:.2f}, {out['plan_NTHS'][i, j, t, 1]:.2f})" for t in steps)
            a = out["action_NTA"][i, j]
            print(f"  R_0 {R0:4.2f}: plan {xy}   first action ({a[0]:+.2f}, {a[1]:+.2f})")


if __name__ == "__main__":
    main()
