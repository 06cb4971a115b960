"""Table 8: milliseconds per action of MAGE, DT and Diffuser on this device, beside the paper's figures.

Every policy gets random weights (latency does not depend on training) in its paper configuration:
MAGE at the Adroit size (8 blocks, width 512, 4 heads, K = 8 scales up to H = 24, codebook 512),
DT at CORL's (3 layers, width 128, context 20), Diffuser at Janner et al.'s locomotion config
(20 denoising steps, 64 value-guided plans per episode, 2 guide steps). Dimensions are pen's (obs 45,
action 24). One "action" is what the agent computes per environment step for B parallel episodes
(MAGE and Diffuser replan every step). Times are wall-clock per call after warm-up, synchronised on
CUDA; mean and standard deviation over ``--n-actions`` calls.

    python bench/latency.py --device cpu --batch-sizes 1 100 --n-actions 200 --out results/bench/table8_cpu.csv
    python bench/latency.py --device cuda --batch-sizes 1 100 --n-actions 300 --out results/bench/table8_h100.csv
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mage.config import MageConfig  # noqa: E402
from timing import WARMUP_CALLS, prepare_device, time_calls, write_csv  # noqa: E402  (bench/timing.py, beside this script)
from mage.fast_act import FastActor  # noqa: E402
from mage.model import MageModel  # noqa: E402
from mage.policy import plan_actions  # noqa: E402

PEN_OBS_DIM, PEN_ACT_DIM = 45, 24
PAPER_TABLE = ROOT / "results" / "paper" / "table8.csv"
PAPER_FALLBACK = {"Ours": (27.30, 0.69), "DT": (6.49, 0.11), "TT": (12863.07, 19.37), "ADT": (7.81, 0.14),
                  "DD": (2339.16, 11.37), "HD": (1480.21, 25.18)}  # Table 8, ms on an RTX 4090
LABELS = {"mage": "Ours", "dt": "DT", "diffuser": "Diffuser"}
METHODS = tuple(LABELS)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} ({torch.get_num_threads()} threads)"


def paper_figures() -> dict[str, tuple[float, float]]:
    """Table 8's mean and ± per column label (results/paper/table8.csv, else the numbers above)."""
    if not PAPER_TABLE.exists():
        return dict(PAPER_FALLBACK)
    t = pd.read_csv(PAPER_TABLE)
    return {r.column: (float(r.mean), float(r.pm)) for r in t.itertuples()}


# ----------------------------------------------------------------------------- policies

def mage_model(device: torch.device, profile: str = "paper") -> MageModel:
    """MAGE with pen's dimensions in a MageAgent profile's size: "paper" is the paper's Adroit
    configuration (MageConfig's defaults), "smoke" / "quick" the small CPU profiles."""
    from mage.agent import MageAgent

    overrides = {k: v for k, v in MageAgent.PROFILES[profile].items() if k != "steps"}
    return MageModel(MageConfig(**overrides), PEN_OBS_DIM, PEN_ACT_DIM).to(device).eval()


def mage_calls(model: MageModel, batch: int, device: torch.device) -> dict[str, Callable[[], object]]:
    """The eager path (mage.policy.plan_actions, bf16 autocast on CUDA as MageAgent acts) and FastActor."""
    s0 = torch.randn(batch, model.obs_dim, device=device)
    R0 = torch.rand(batch, 1, device=device)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else nullcontext

    def eager():
        with torch.no_grad(), autocast():
            return plan_actions(model, s0, R0, 1)

    fast = FastActor(model, batch, device)
    return {"eager": eager, "optimised": lambda: fast.act(s0, R0)}


def dt_calls(batch: int, device: torch.device) -> dict[str, Callable[[], object]]:
    """One DT forward over a full context (what DTAgent computes per step), CORL's config."""
    from baselines.dt import DecisionTransformer, DTConfig

    c = DTConfig()
    model = DecisionTransformer(PEN_OBS_DIM, PEN_ACT_DIM, c).to(device).eval()
    K = c.seq_len
    states = torch.randn(batch, K, PEN_OBS_DIM, device=device)
    actions = torch.randn(batch, K, PEN_ACT_DIM, device=device).tanh()
    rtg = torch.rand(batch, K, device=device)
    steps = torch.arange(K, device=device).expand(batch, K)
    valid = torch.ones(batch, K, dtype=torch.bool, device=device)

    def eager():
        with torch.no_grad():
            return model(states, actions, rtg, steps, valid)[:, -1]

    return {"eager": eager}


def diffuser_calls(batch: int, device: torch.device) -> dict[str, Callable[[], object]]:
    """One value-guided planning pass (plan_samples plans per episode, best by value): Diffuser's step."""
    from baselines.diffuser import DiffuserAgent

    agent = DiffuserAgent(0, str(device))
    agent._build(PEN_OBS_DIM, PEN_ACT_DIM)
    samples = agent.config.plan_samples
    first = torch.randn(batch * samples, PEN_OBS_DIM, device=device)

    def eager():
        plans, values = agent.sample_plans({0: first})
        best = values.view(batch, samples).argmax(1)
        return plans.view(batch, samples, *plans.shape[1:])[torch.arange(batch, device=device), best, 0, :PEN_ACT_DIM]

    return {"eager": eager}


# ----------------------------------------------------------------------------- the table

def table8(device: str | torch.device = "cpu", batch_sizes=(1, 100), n_actions: int = 200,
           methods=METHODS, warmup: int = WARMUP_CALLS, mage_profile: str = "paper") -> pd.DataFrame:
    """One row per (method, batch size, path): mean_ms, std_ms over ``n_actions`` timed actions,
    with the device's name and the paper's Table 8 figure for the method (NaN where it has none).
    ``mage_profile``: MAGE's size (a MageAgent profile; the paper's Table 8 is "paper")."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
    torch.manual_seed(0)
    paper = paper_figures()
    name = device_name(device)
    model = mage_model(device, mage_profile) if "mage" in methods else None
    rows = []
    for method in methods:
        for batch in batch_sizes:
            if method == "mage":
                calls = mage_calls(model, batch, device)
            elif method == "dt":
                calls = dt_calls(batch, device)
            else:
                calls = diffuser_calls(batch, device)
            for path, call in calls.items():
                times = time_calls(call, n_actions, device, warmup)
                p_mean, p_pm = paper.get(LABELS[method], (float("nan"), float("nan")))
                rows.append(dict(method=method, label=LABELS[method], batch_size=batch, path=path,
                                 mean_ms=statistics.fmean(times), std_ms=statistics.pstdev(times),
                                 n_actions=n_actions, device=name, mage_profile=mage_profile if method == "mage" else "",
                                 paper_ms=p_mean, paper_pm=p_pm))
    df = pd.DataFrame(rows)
    eager = df[df.path == "eager"].set_index(["method", "batch_size"]).mean_ms
    df["speedup_vs_eager"] = [eager[(r.method, r.batch_size)] / r.mean_ms for r in df.itertuples()]
    return df


def format_table(df: pd.DataFrame) -> str:
    from tabulate import tabulate

    rows = [[r.label, r.batch_size, r.path, f"{r.mean_ms:.2f} ± {r.std_ms:.2f}", f"{r.speedup_vs_eager:.1f}x",
             "" if pd.isna(r.paper_ms) else f"{r.paper_ms:.2f} ± {r.paper_pm:.2f}"] for r in df.itertuples()]
    paper = paper_figures()
    rows += [[label, "?", "paper only", "", "", f"{m:.2f} ± {pm:.2f}"] for label, (m, pm) in paper.items()
             if label not in set(df.label)]
    head = ["method", "B", "path", "ms / action (here)", "vs eager", "paper Table 8 (RTX 4090, ms)"]
    sizes = ",".join(sorted(set(df.mage_profile) - {""})) or "n/a"
    return f"Table 8 latency on {df.device.iloc[0]} (MAGE size: {sizes})\n" + tabulate(rows, head)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 100])
    ap.add_argument("--n-actions", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=WARMUP_CALLS)
    ap.add_argument("--mage-profile", default="paper", choices=["paper", "quick", "smoke"],
                    help="MAGE's size; Table 8 is the paper's Adroit configuration")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, default=None, help="CSV path for the rows")
    args = ap.parse_args(argv)
    if args.n_actions < 1 or any(b < 1 for b in args.batch_sizes):
        print("error: --n-actions and --batch-sizes must be >= 1", file=sys.stderr)
        return 2
    if not prepare_device(args.device, args.threads):
        return 2
    df = table8(args.device, args.batch_sizes, args.n_actions, args.methods, args.warmup, args.mage_profile)
    print(format_table(df))
    write_csv(df, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
