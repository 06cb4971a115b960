"""Where a trained MAGE loses its action: each stage's error on the data, and the plan's response to R_0.

    python bench/mage_diagnostics.py results/runs/<mage run id>     (a finished or checkpointed run)

Prints, on windows sampled from the run's dataset (states z-scored, actions in [-1, 1]):
- the action variance (the error of always acting with the mean action);
- tokenizer: state reconstruction MSE; latent inverse dynamics I(Z) on the encoder's Z;
- generator (greedy, given the data's s_0 and R_0): token accuracy per scale; I(Z) on the generated
  Z; the plan's start error |s_0_hat - s_0|^2 (what L_cond is there to close);
- the plan against R_0 = f x the acting target, f in 0 .. 1.5: start error, and for goal-reaching
  suites (a goal in the suite YAML) the distance to the goal at the plan's start and end.
What was learnt with it on maze2d-umaze is in bench/README.md ("MAGE diagnostics").
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
from mage.data import WindowSampler  # noqa: E402
from mage.policy import generate  # noqa: E402
from mage.training import decoder_rtg, ground_truth_tokens  # noqa: E402

TARGET_FRACTIONS = (0.0, 0.5, 1.0, 1.5)


@torch.no_grad()
def diagnose(agent: MageAgent, data, goal_xy: np.ndarray | None = None, samples: int = 2048, seed: int = 0) -> dict:
    """The figures listed in the module docstring, as a dict of floats (lists per scale / per R_0)."""
    model, norm = agent.model.eval(), agent.norm
    lay = model.layout
    batch = WindowSampler(data, norm, lay, agent.cfg.horizon, agent.device).sample(
        samples, torch.Generator().manual_seed(seed))
    out: dict = {"action_variance": float(batch["a0"].var(0).mean())}
    tokens = ground_truth_tokens(model, batch)
    f_true = torch.stack(model.quantizer.tokens_to_scale_features(tokens)).sum(0)
    R0 = decoder_rtg(model, batch)
    if lay.states is not None:
        x_rec = model.decoder(f_true, R0).float()
        out["recon_state_mse"] = float((x_rec[..., lay.states] - batch["window"][..., lay.states]).pow(2).mean())
    out["inverse_mse_true_Z"] = float((model.latent_inverse(f_true) - batch["a0"]).pow(2).mean())
    generated, _, f_gen = generate(model, model.condition(batch["s0"], batch["R0"]))
    out["token_accuracy_per_scale"] = [float((g == t).float().mean()) for g, t in zip(generated, tokens)]
    out["inverse_mse_generated_Z"] = float((model.latent_inverse(f_gen) - batch["a0"]).pow(2).mean())
    if lay.states is None:
        return out
    plan = model.plan_window(f_gen, batch["s0"], batch["R0"]).float()
    out["plan_start_mse"] = float((plan[:, 0, lay.states] - batch["s0"]).pow(2).mean())
    out["by_target"] = []
    for fraction in TARGET_FRACTIONS:
        R0_f = torch.full_like(batch["R0"], fraction * norm.target_return / norm.rtg_scale)
        _, _, f = generate(model, model.condition(batch["s0"], R0_f))
        states = model.plan_window(f, batch["s0"], R0_f).float()[..., lay.states]
        row = {"fraction": fraction, "plan_start_mse": float((states[:, 0] - batch["s0"]).pow(2).mean())}
        if goal_xy is not None:   # positions are the first two state features in the goal-reaching suites
            xy = states[..., :2].cpu().numpy() * norm.obs_std[:2] + norm.obs_mean[:2]
            row["goal_distance_plan_start"] = float(np.linalg.norm(xy[:, 0] - goal_xy, axis=-1).mean())
            row["goal_distance_plan_end"] = float(np.linalg.norm(xy[:, -1] - goal_xy, axis=-1).mean())
        out["by_target"].append(row)
    return out


def main() -> None:
    from suites.registry import dataset_spec, load_offline_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path, help="results/runs/<run id> of a finished MAGE run")
    ap.add_argument("--samples", type=int, default=2048)
    args = ap.parse_args()
    result_path, checkpoint_path = args.run_dir / "result.json", args.run_dir / "checkpoint.pt"
    info = json.loads(result_path.read_text()) if result_path.exists() else {}
    if info.get("method") != "mage" or not checkpoint_path.exists():
        raise SystemExit(f"mage_diagnostics: {args.run_dir} is not a finished MAGE run (result.json, checkpoint.pt)")
    agent = MageAgent(seed=0)
    agent.load_state_dict(torch.load(checkpoint_path, weights_only=False)["agent"])
    key = info["dataset"]
    data = load_offline_dataset(key, info.get("data_profile") or info["profile"])
    goal = dataset_spec(key).hparams.get("diffuser", {}).get("goal_xy")
    figures = diagnose(agent, data, None if goal is None else np.asarray(goal, np.float64), args.samples)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
