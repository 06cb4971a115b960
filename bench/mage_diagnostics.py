"""Where a trained MAGE loses its action: each stage's error on the data, and the plan's response to R_0.

    python bench/mage_diagnostics.py results/runs/<mage run id>     (a finished or checkpointed run)

Prints, on windows sampled from the run's dataset (states z-scored, actions in [-1, 1]):
- the action variance (the error of always acting with the mean action);
- tokenizer: state reconstruction MSE; latent inverse dynamics I(Z) on the encoder's Z; how much of the
  window's course its first k scales fix (the displacement correlation of the window decoded by D from the
  tokens of scales 1 .. k only, k = 1 .. K);
- generator, teacher-forced: how many nats per token R_0 is worth at each scale (the CE with R_0 shuffled
  over the batch minus the CE with the window's own R_0; scale 1 is the coarse choice of route);
- generator (greedy, given the data's s_0 and R_0): token accuracy per scale; I(Z) on the generated
  Z; the plan's start error |s_0_hat - s_0|^2 (what L_cond is there to close); how faithful the plan is
  to the data: the correlation of its H-step state displacement with the true window's, decoded by D'
  (adapters) and by the tokenizer's D;
- the plan (the config's plan_decoder) against R_0 = f x the acting target (the config's target rule at
  each s_0), f in 0 .. 3: start error; for goal-reaching suites (a goal in the suite YAML) the distance
  to the goal at the plan's start and end; on maze2d, the cosine between the plan's displacement and the
  direction of the maze's shortest path to the goal, and the same for the action (the data's: printed
  beside, as the behaviour's level);
- for a run with a return head (target_rule value) on a goal-reaching suite, its V(s) over the data's states
  per band of distance to the goal, with the share at or above switch_value (plan_decoder "switched");
- for a run with a stage-0 twin Q (value_steps, or fitted here with ``--critic``) and the explicit head, how
  plan_rank q chooses among 8 candidate plans (greedy + 7 sampled; plan_samples if more) at data states within
  the reward radius of the goal and in the farther half of the data from it: the first action's norm (greedy,
  Q-picked, plan_rank q_mean's weighted mean, the data's), q_mean's alignment (the weighted mean's norm over the
  weighted mean of the candidates' norms: 1 = they agree, near 0 = they cancel), the mean correlation over
  candidates of Q with that norm and with the shortest-path cosine, and the path cosine of greedy and picked
  actions (``--q-only`` prints just these; ``--decoder`` and ``--candidates`` set plan_decoder and plan_samples);
- for a run trained with advantage_beta > 0, the stage-2 weights exp(beta A) on data windows: their mean,
  the share at the clip, the effective sample size as a share of the windows (sum w)^2 / (n sum w^2), and,
  with a goal, their mean within the reward radius and beyond it with the speed |v| of the states there,
  plain and weighted (``--advantage-only`` prints just these).
What was learnt with it on maze2d-umaze is in bench/README.md ("MAGE diagnostics").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mage_leads import fit_td_value, load_run  # noqa: E402
from mage.agent import MageAgent  # noqa: E402
from mage.config import PLAN_DECODERS  # noqa: E402
from mage.policy import candidate_plans, generate, plan_actions, q_mean_weights  # noqa: E402
from mage.training import EXP_ADV_MAX, advantage_weights, decoder_rtg, ground_truth_tokens  # noqa: E402
from suites.mazes import REWARD_RADIUS  # noqa: E402

TARGET_FRACTIONS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
GOAL_DISTANCE_BANDS = (0.0, REWARD_RADIUS, 1.0, 2.0, 4.0, np.inf)   # position units; maze cells are 1 wide
RANKED_CANDIDATES = 8      # plan_rank q's candidates in the diagnosis: greedy + 7 sampled (bench/README.md E)


def mean_cosine(a_ND: np.ndarray, b_ND: np.ndarray) -> float:
    return float(np.mean(np.sum(a_ND * b_ND, 1) / (np.linalg.norm(a_ND, axis=1) * np.linalg.norm(b_ND, axis=1) + 1e-8)))


def displacement_correlation(plan_BHS: torch.Tensor, true_BHS: torch.Tensor) -> float:
    """Mean over state features of the correlation (over windows) of the H-step displacement."""
    d_plan = (plan_BHS[:, -1] - plan_BHS[:, 0]).cpu().numpy()
    d_true = (true_BHS[:, -1] - true_BHS[:, 0]).cpu().numpy()
    return float(np.nanmean([np.corrcoef(d_plan[:, j], d_true[:, j])[0, 1] for j in range(d_plan.shape[1])]))


@torch.no_grad()
def diagnose(agent: MageAgent, data, goal_xy: np.ndarray | None = None, samples: int = 2048, seed: int = 0,
             path_direction=None) -> dict:
    """The figures listed in the module docstring, as a dict of floats (lists per scale / per R_0).
    ``path_direction(xy [N, 2]) -> [N, 2]``: the way to the goal along the maze (maze2d), or None."""
    model, norm = agent.model.eval(), agent.norm
    lay = model.layout
    batch = agent._window_sampler(data, labelled=True).sample(samples, torch.Generator().manual_seed(seed))
    out: dict = {"action_variance": float(batch["a0"].var(0).mean())}
    tokens = ground_truth_tokens(model, batch)
    f_true = torch.stack(model.quantizer.tokens_to_scale_features(tokens)).sum(0)
    R0 = decoder_rtg(model, batch)
    if lay.states is not None:
        x_rec = model.decoder(f_true, R0).float()
        out["recon_state_mse"] = float((x_rec[..., lay.states] - batch["window"][..., lay.states]).pow(2).mean())
    out["inverse_mse_true_Z"] = float((model.latent_inverse(f_true) - batch["a0"]).pow(2).mean())
    if lay.states is not None:
        out["coarse_displacement_corr"] = coarse_displacement_correlation(model, tokens, R0, batch["window"][..., lay.states])
    out["r0_nats_per_scale"] = r0_nats_per_scale(model, batch, tokens, seed)
    generated, _, f_gen = generate(model, model.condition(batch["s0"], batch["R0"]))
    out["token_accuracy_per_scale"] = [float((g == t).float().mean()) for g, t in zip(generated, tokens)]
    out["inverse_mse_generated_Z"] = float((model.latent_inverse(f_gen) - batch["a0"]).pow(2).mean())
    if lay.states is None:
        return out
    plan = model.plan_window(f_gen, batch["s0"], batch["R0"]).float()
    out["plan_start_mse"] = float((plan[:, 0, lay.states] - batch["s0"]).pow(2).mean())
    true_states = batch["window"][..., lay.states]
    for name in ("adapted", "base"):
        decoded = model.plan_window(f_gen, batch["s0"], batch["R0"], decoder=name).float()[..., lay.states]
        out[f"plan_displacement_corr_{name}"] = displacement_correlation(decoded, true_states)
    xy0 = batch["s0"][:, :2].cpu().numpy() * norm.obs_std[:2] + norm.obs_mean[:2]
    way = path_direction(xy0) if path_direction is not None else None
    if way is not None:
        out["data_displacement_path_cosine"] = mean_cosine((true_states[:, -1, :2] - true_states[:, 0, :2]).cpu().numpy()
                                                           * norm.obs_std[:2], way)
        out["data_action_path_cosine"] = mean_cosine(batch["a0"].cpu().numpy(), way)
    target = agent._acting_target(batch["s0"])
    out["by_target"] = []
    for fraction in TARGET_FRACTIONS:
        R0_f = fraction * target
        _, _, f = generate(model, model.condition(batch["s0"], R0_f))
        states = model.plan_window(f, batch["s0"], R0_f).float()[..., lay.states]
        row = {"fraction": fraction, "plan_start_mse": float((states[:, 0] - batch["s0"]).pow(2).mean())}
        if way is not None:
            moved = (states[:, -1, :2] - states[:, 0, :2]).cpu().numpy() * norm.obs_std[:2]
            row["plan_displacement_path_cosine"] = mean_cosine(moved, way)
            actions = plan_actions(model, batch["s0"], R0_f, 1, value_scale=norm.value_scale)[:, 0].cpu().numpy()
            row["action_path_cosine"] = mean_cosine(actions, way)
        if goal_xy is not None:   # positions are the first two state features in the goal-reaching suites
            xy = states[..., :2].cpu().numpy() * norm.obs_std[:2] + norm.obs_mean[:2]
            row["goal_distance_plan_start"] = float(np.linalg.norm(xy[:, 0] - goal_xy, axis=-1).mean())
            row["goal_distance_plan_end"] = float(np.linalg.norm(xy[:, -1] - goal_xy, axis=-1).mean())
        out["by_target"].append(row)
    if model.return_head is not None and goal_xy is not None:
        out["return_head_by_goal_distance"] = return_head_by_goal_distance(agent, data, goal_xy)
    if model.cfg.advantage_beta > 0:
        out["advantage_weights"] = advantage_weight_figures(agent, batch, goal_xy)
    if model.td_value is not None and model.cfg.inverse_dynamics == "explicit" and goal_xy is not None:
        out["q_ranking"] = q_ranking(agent, data, goal_xy, path_direction, min(samples, 256), seed)
    return out


def coarse_displacement_correlation(model, tokens: list[torch.Tensor], R0_B1: torch.Tensor,
                                    true_BHS: torch.Tensor) -> list[float]:
    """[K] the displacement correlation of the data windows decoded by D from their first k scales' tokens
    only, k = 1 .. K: how much of the window's course the coarse tokens (the generator's first choices) fix."""
    features = model.quantizer.tokens_to_scale_features(tokens)
    layout = model.layout
    return [displacement_correlation(model.decoder(torch.stack(features[:k]).sum(0), R0_B1).float()[..., layout.states],
                                     true_BHS) for k in range(1, len(features) + 1)]


@torch.no_grad()
def r0_nats_per_scale(model, batch: dict, tokens: list[torch.Tensor], seed: int) -> list[float]:
    """[K] mean teacher-forced CE per token of each scale with R_0 shuffled over the batch, minus that with
    each window's own R_0: what the generator reads from R_0 at that scale (0 = ignores it)."""
    tf_in = model.quantizer.teacher_forcing_inputs(tokens)
    target_BL = torch.cat(tokens, 1)
    shuffled = batch["R0"][torch.randperm(len(batch["R0"]), generator=torch.Generator().manual_seed(seed))]
    ce = []
    for R0 in (batch["R0"], shuffled):
        logits_BLV = model.generator(model.condition(batch["s0"], R0), tf_in, model.rtg_index).float()
        ce_BL = F.cross_entropy(logits_BLV.transpose(1, 2), target_BL, reduction="none")
        ce.append(torch.stack([c.mean() for c in torch.split(ce_BL, list(model.cfg.scales), 1)]))
    return (ce[1] - ce[0]).tolist()


def _mean_row_correlation(a_NB: np.ndarray, b_NB: np.ndarray) -> float:
    """Mean over columns b of corr(a[:, b], b[:, b]) (columns where either is constant are skipped)."""
    return float(np.nanmean([np.corrcoef(a_NB[:, j], b_NB[:, j])[0, 1] for j in range(a_NB.shape[1])
                             if a_NB[:, j].std() > 0 and b_NB[:, j].std() > 0] or [np.nan]))


@torch.no_grad()
def advantage_weight_figures(agent: MageAgent, batch: dict, goal_xy: np.ndarray | None) -> dict:
    """The advantage_beta weights of stage 2 on ``batch``'s windows; see the module docstring. Speeds in the
    data's units, from the first two velocity features after the position (maze2d's (x, y, vx, vy))."""
    norm = agent.norm
    w = advantage_weights(agent.model, batch, norm.value_scale).cpu().numpy().astype(np.float64)
    out = {"mean": float(w.mean()), "share_at_clip": float((w >= EXP_ADV_MAX).mean()),
           "effective_sample_share": float(w.sum() ** 2 / (len(w) * (w ** 2).sum()))}
    if goal_xy is None:
        return out
    s0 = batch["s0"].cpu().numpy() * norm.obs_std + norm.obs_mean
    speed = np.linalg.norm(s0[:, 2:4], axis=1)
    near = np.linalg.norm(s0[:, :2] - goal_xy, axis=1) < REWARD_RADIUS
    for name, rows in (("near_goal", near), ("elsewhere", ~near)):
        if rows.any():
            out[name] = {"share_of_windows": float(rows.mean()), "mean_weight": float(w[rows].mean()),
                         "speed_plain": float(speed[rows].mean()),
                         "speed_weighted": float((w[rows] * speed[rows]).sum() / w[rows].sum())}
    return out


@torch.no_grad()
def return_head_by_goal_distance(agent: MageAgent, data, goal_xy: np.ndarray) -> list[dict]:
    """The return head's V(s) (normalised RTG, before target_return_scale) over the data's states, per band
    of distance to the goal (GOAL_DISTANCE_BANDS, position units): its mean, its 10% and 90% quantiles and
    the share of states at or above cfg.switch_value, where plan_decoder "switched" decodes by D'."""
    model, norm = agent.model.eval(), agent.norm
    value = model.return_head(torch.as_tensor(norm.obs(data.observations).astype(np.float32)))[:, 0].float().numpy()
    distance = np.linalg.norm(data.observations[:, :2] - goal_xy, axis=1)
    rows = []
    for low, high in zip(GOAL_DISTANCE_BANDS[:-1], GOAL_DISTANCE_BANDS[1:]):
        v = value[(distance >= low) & (distance < high)]
        if v.size:
            rows.append({"distance_from": low, "distance_to": high, "states": int(v.size), "mean": float(v.mean()),
                         "q10": float(np.quantile(v, 0.1)), "q90": float(np.quantile(v, 0.9)),
                         "share_at_or_above_switch_value": float((v >= model.cfg.switch_value).mean())})
    return rows


@torch.no_grad()
def q_ranking(agent: MageAgent, data, goal_xy: np.ndarray, path_direction, states: int, seed: int) -> dict:
    """What plan_rank q picks among RANKED_CANDIDATES plans at data states near the goal (within the reward
    radius) and far from it (beyond the data's median distance), at the config's acting target; see the
    module docstring."""

    model, norm = agent.model.eval(), agent.norm
    rng, N = np.random.default_rng(seed), max(RANKED_CANDIDATES, model.cfg.plan_samples)
    torch.manual_seed(seed)      # the sampled candidates: the same figures on every call
    distance = np.linalg.norm(data.observations[:, :2] - goal_xy, axis=1)
    out = {}
    for name, where in (("near_goal", distance < REWARD_RADIUS), ("far_from_goal", distance > np.median(distance))):
        rows = np.flatnonzero(where)
        if len(rows) < 2:
            continue
        rows = rng.choice(rows, min(states, len(rows)), replace=False)
        B = len(rows)
        s0 = torch.as_tensor(norm.obs(data.observations[rows]).astype(np.float32))
        R0 = agent._acting_target(s0)
        _, first = candidate_plans(model, s0, R0, N)                                     # first: [N * B, A]
        q = model.td_value.q(s0.repeat(N, 1), first).view(N, B).numpy()
        first = first.view(N, B, -1).numpy()
        norm_NB = np.linalg.norm(first, axis=2)
        picked = q.argmax(0), np.arange(B)
        # plan_rank q_mean's action: the candidates' first actions weighted by softmax(beta Q), Q in reward units;
        # its norm over the weighted mean of their norms is 1 where the candidates agree and near 0 where they cancel
        w_NB = q_mean_weights(torch.as_tensor(q), model.cfg.plan_beta, norm.value_scale).numpy()
        mean_BA = (w_NB[..., None] * first).sum(0)
        row = {"states": B, "candidates": N, "action_norm_greedy": float(norm_NB[0].mean()),
               "action_norm_q_picked": float(norm_NB[picked].mean()),
               "action_norm_q_mean": float(np.linalg.norm(mean_BA, axis=1).mean()),
               "q_mean_alignment": float((np.linalg.norm(mean_BA, axis=1) / ((w_NB * norm_NB).sum(0) + 1e-8)).mean()),
               "action_norm_data": float(np.linalg.norm(norm.act(data.actions[rows]), axis=1).mean()),
               "q_norm_correlation": _mean_row_correlation(q, norm_NB)}
        if path_direction is not None:
            way = path_direction(data.observations[rows, :2])
            way = way / (np.linalg.norm(way, axis=1, keepdims=True) + 1e-8)
            cosine_NB = (first * way).sum(2) / (norm_NB + 1e-8)
            row.update({"q_path_cosine_correlation": _mean_row_correlation(q, cosine_NB),
                        "action_path_cosine_greedy": float(cosine_NB[0].mean()),
                        "action_path_cosine_q_picked": float(cosine_NB[picked].mean())})
        out[name] = row
    return out


def maze_path_direction(maze: str):
    """xy [N, 2] -> [N, 2]: from each position to the centre of the next cell on the maze's shortest path
    to D4RL's goal cell (the goal itself inside the goal cell), by the data controller's Q-iteration."""
    from suites.mazes import maze_layout, q_iteration_policy

    layout = maze_layout(maze)
    policy = q_iteration_policy(layout, layout.goal_cell)

    def direction(xy_N2: np.ndarray) -> np.ndarray:
        cells = [layout.xy_to_cell(p) for p in xy_N2]
        return np.array([layout.cell_to_xy(policy.get(c, c)) for c in cells]) - xy_N2
    return direction


def main() -> None:
    from suites.registry import dataset_spec, load_offline_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="results/runs/<run id> of a finished MAGE run")
    ap.add_argument("--samples", type=int, default=2048)
    ap.add_argument("--advantage-only", action="store_true", help="only the advantage_beta weights' figures")
    ap.add_argument("--q-only", action="store_true", help="only the q_ranking figures (a goal-reaching suite)")
    ap.add_argument("--critic", action="store_true",
                    help="fit IQL's V and twin Q by TD beside a run without them (bench/mage_leads.py variant critic)")
    ap.add_argument("--decoder", choices=PLAN_DECODERS, help="the plan_decoder of the candidates (default: the run's)")
    ap.add_argument("--candidates", type=int, help="plans ranked per state in q_ranking (plan_samples; default 8)")
    args = ap.parse_args()
    result_path, checkpoint_path = args.run_dir / "result.json", args.run_dir / "checkpoint.pt"
    info = json.loads(result_path.read_text()) if result_path.exists() else {}
    if info.get("method") != "mage" or not checkpoint_path.exists():
        raise SystemExit(f"mage_diagnostics: {args.run_dir} is not a finished MAGE run (result.json, checkpoint.pt)")
    agent, info = load_run(args.run_dir)
    key = info["dataset"]
    data = load_offline_dataset(key, info.get("data_profile") or info["profile"])
    spec = dataset_spec(key)
    goal = spec.hparams.get("diffuser", {}).get("goal_xy")
    way = maze_path_direction(spec.env.get("kwargs", {})["maze"]) if spec.suite == "maze2d" else None
    if args.critic:
        fit_td_value(agent, data, seed=info["seed"])
    if args.decoder:
        agent.cfg.plan_decoder = args.decoder
    if args.candidates:
        agent.cfg.plan_samples = args.candidates
    if args.q_only:
        if agent.model.td_value is None or goal is None:
            raise SystemExit("mage_diagnostics: --q-only needs a stage-0 Q (value_steps or --critic) and a goal")
        print(json.dumps(q_ranking(agent, data, np.asarray(goal, np.float64), way, args.samples, 0), indent=1))
        return
    if args.advantage_only:
        if agent.cfg.advantage_beta == 0:
            raise SystemExit(f"mage_diagnostics: {args.run_dir} was trained without advantage weights (advantage_beta 0)")
        batch = agent._window_sampler(data, labelled=True).sample(args.samples, torch.Generator().manual_seed(0))
        print(json.dumps(advantage_weight_figures(agent, batch, None if goal is None else np.asarray(goal, np.float64)),
                         indent=1))
        return
    figures = diagnose(agent, data, None if goal is None else np.asarray(goal, np.float64), args.samples,
                       path_direction=way)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
