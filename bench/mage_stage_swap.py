"""Which stage decides whether a MAGE seed learns: one seed's tokenizer under another seed's generator.

    python bench/mage_stage_swap.py results/runs/mage-maze2d-umaze-s2-* results/runs/mage-maze2d-umaze-s0-* \
        --episodes 50 --out results/bench/swap-t2-g0.json

The first run gives the tokenizer, the second the generator's seed. Both runs' stage 1 is retrained
here from their seeds, exactly as the harness trained it (the same config, data and RNG streams; the
script checks that the retrained tokenizer equals the one in the first run's checkpoint, which stage 2
never changes, when that checkpoint is past stage 1; only the result.json is needed otherwise). Then
stage 2 starts from the first run's stage-1 state (encoder, quantiser, decoder D, inverse heads, normaliser) with the second run's untrained stage-2 modules (generator, the adapters of
D') and its random streams (dropout, Gumbel noise, batches), and trains to the run's last step. The
hybrid is evaluated on the first run's evaluation episodes (seed 10,000 + its training seed) and
prints score, success and the share of the episodes starting outside the goal radius that reach it.

If a failing seed's tokenizer fails under a good seed's generator, and a good tokenizer learns under
the failing seed's generator, the tokenizer decides; the other way round, stage 2 does.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.mage_leads import load_run, reached_from_outside, starts_inside_goal  # noqa: E402
from mage.agent import MageAgent  # noqa: E402

# modules that stage 1 leaves untouched (their state at the end of stage 1 is their initialisation)
STAGE2_ONLY_PREFIXES = ("generator.", "decoder.adapters.")


class _StageOneDone(Exception):
    pass


def train_stage_one(seed: int, data, config: dict, steps: int, stage1_end: int) -> MageAgent:
    """A MageAgent of ``seed`` trained as the harness trains it, stopped when stage 1 ends."""
    def stop(step, metrics):
        if step >= stage1_end:
            raise _StageOneDone

    agent = MageAgent(seed=seed)
    try:
        agent.fit(data, config, steps, stop)
    except _StageOneDone:
        pass
    return agent


def hybrid_state(tokenizer_agent: MageAgent, generator_agent: MageAgent) -> dict:
    """The tokenizer agent's state with the generator agent's stage-2 modules, optimiser and random streams."""
    state = tokenizer_agent.state_dict()
    other = generator_agent.state_dict()
    for key in state["model"]:
        if key.startswith(STAGE2_ONLY_PREFIXES):
            state["model"][key] = other["model"][key]
    for key in ("opt2", "torch_rng", "sample_gen"):
        state[key] = other[key]
    return state


def main() -> None:
    from harness.runs import eval_seed
    from suites.evaluation import evaluate
    from suites.registry import load_offline_dataset

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tokenizer_run", type=Path)
    ap.add_argument("generator_run", type=Path)
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--save", type=Path, metavar="RUN_DIR",
                    help="keep the hybrid as a run folder (checkpoint.pt, result.json) for mage_leads / mage_diagnostics")
    args = ap.parse_args()
    torch.set_num_threads(1)
    trained, info = load_run(args.tokenizer_run)
    other_info = json.loads((args.generator_run / "result.json").read_text())
    if (info["dataset"], info["config"], info["steps"]) != (other_info["dataset"], other_info["config"], other_info["steps"]):
        sys.exit("the two runs differ in dataset, config or steps: a swap needs the same recipe")
    data = load_offline_dataset(info["dataset"], info.get("data_profile") or info["profile"])
    config, steps = dict(info["config"]), info["steps"]
    _, stage1_end = trained.cfg.stage_ends(steps)
    tokenizer_agent = train_stage_one(info["seed"], data, config, steps, stage1_end)
    frozen = [k for k in trained.model.state_dict()   # stage 1's own modules (usage_count counts on in stage 2)
              if k.startswith(("encoder.", "quantizer.", "decoder.")) and not k.startswith(STAGE2_ONLY_PREFIXES)
              and k != "quantizer.usage_count"]
    retrained = tokenizer_agent.model.state_dict()
    if trained.step < stage1_end:    # a checkpoint from within stage 1 (a stopped run) holds no finished tokenizer
        print(f"tokenizer not checked: the checkpoint is at step {trained.step}, stage 1 ends at {stage1_end}")
    elif not all(torch.equal(trained.model.state_dict()[k], retrained[k]) for k in frozen):
        sys.exit("the retrained tokenizer differs from the checkpoint's: this machine does not reproduce the run")
    generator_agent = train_stage_one(other_info["seed"], data, config, steps, stage1_end)
    hybrid = MageAgent(seed=info["seed"])
    hybrid.load_state_dict(hybrid_state(tokenizer_agent, generator_agent))
    hybrid.fit(data, config, steps)
    seed = eval_seed(info["seed"])
    result = evaluate(hybrid, info["dataset"], episodes=args.episodes, seed=seed)
    success = np.asarray(result.success if result.success is not None else [], bool)
    inside = starts_inside_goal(info["dataset"], args.episodes, seed)
    row = {"tokenizer_seed": info["seed"], "generator_seed": other_info["seed"], "dataset": info["dataset"],
           "score": float(result.normalized.mean()), "success": float(success.mean()) if success.size else None,
           "reached_from_outside": reached_from_outside(success, inside),
           "normalized": result.normalized.tolist()}
    print(json.dumps({k: v for k, v in row.items() if k != "normalized"}))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), "row": row}, indent=1))
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        torch.save({"agent": hybrid.state_dict()}, args.save / "checkpoint.pt")
        kept = {k: info[k] for k in ("method", "dataset", "seed", "profile", "data_profile", "config", "steps", "eval_seed")}
        (args.save / "result.json").write_text(json.dumps({**kept, "generator_seed": other_info["seed"],
                                                          "score": row["score"], "success": success.tolist()}))


if __name__ == "__main__":
    main()
