"""``--dry-run`` (the plan: runs, which exist, missing data, GPU-hours) and ``--list`` (every plan).

GPU-hour cost model (rough, for planning a cluster allocation, not a measurement):

    hours(run) = (steps / 1000 * TRAIN_S_PER_1K_STEPS[method]
                  + eval_episodes * horizon / ENV_STEPS_PER_S
                  + horizon * ACT_S_PER_BATCHED_STEP[method]) / 3600

``TRAIN_S_PER_1K_STEPS``: seconds per 1,000 optimisation steps on one H100 at the paper's model
size and batch (our estimates from model size and the published training budgets of CORL/Diffuser;
replace them with bench/ measurements once the speed issue lands). Evaluation runs every episode in
one vector environment: environment time at ENV_STEPS_PER_S (PointMaze on one core, platform notes)
plus one batched ``act`` per step. Runs already done cost nothing.
"""
from __future__ import annotations

from harness.plan import Plan, available_plans, load_plan, PlanError
from harness.runs import PlannedRun
from harness.store import RunStore

TRAIN_S_PER_1K_STEPS = {   # H100, paper model size (estimates, see module docstring)
    "mage": 45.0,          # 8-block transformer over K=8 scales + tokenizer and adapter stages
    "dt": 12.0,            # CORL DT: 3 layers, 128-d, batch 64
    "iql": 4.0,            # CORL IQL: 2×256 MLPs, batch 256
    "diffuser": 40.0,      # temporal U-Net, horizon 32-384
    "bc": 2.0,
    "cql": 10.0,
}
DEFAULT_TRAIN_S_PER_1K_STEPS = 20.0
ACT_S_PER_BATCHED_STEP = {"mage": 0.02, "diffuser": 0.5, "dt": 0.003}   # Diffuser samples 20+ denoising steps
DEFAULT_ACT_S_PER_BATCHED_STEP = 0.001
ENV_STEPS_PER_S = 8_000.0


def estimated_gpu_hours(run: PlannedRun, horizon: int) -> float:
    spec = run.spec
    horizon = min(horizon, spec.eval_max_steps or horizon)
    train_s = spec.steps / 1000 * TRAIN_S_PER_1K_STEPS.get(spec.method, DEFAULT_TRAIN_S_PER_1K_STEPS)
    eval_s = (spec.eval_episodes * horizon / ENV_STEPS_PER_S
              + horizon * ACT_S_PER_BATCHED_STEP.get(spec.method, DEFAULT_ACT_S_PER_BATCHED_STEP))
    return (train_s + eval_s) / 3600


def describe_plan(plan: Plan, planned: list[PlannedRun], store: RunStore, profile: str, seeds: int,
                  missing: dict[str, str], horizons: dict[str, int]) -> str:
    """The dry-run text: header, one line per run with its state, missing data, GPU-hour estimate."""
    lines = [f"{plan.title}  [plan {plan.name}, profile {profile}, {seeds} seed(s), {len(planned)} runs]"]
    counts = {"done": 0, "failed": 0, "missing": 0}
    hours = 0.0
    for run in planned:
        status = store.status(run.spec.run_id)
        counts[status] += 1
        if status != "done":
            hours += estimated_gpu_hours(run, horizons[run.spec.dataset])
        note = f" ({store.failure(run.spec.run_id)['reason']})" if status == "failed" else ""
        lines.append(f"  {status:7s} {run.row} | {run.column} | seed {run.spec.seed} | {run.spec.steps} steps"
                     f" | {run.spec.eval_episodes} episodes | {run.spec.run_id}{note}")
    lines.append(f"runs: {counts['done']} done, {counts['failed']} failed, {counts['missing']} to run")
    if missing:
        lines.append("missing datasets (the command stops until they are present):")
        lines += [f"  {message}" for message in missing.values()]
    else:
        lines.append("data: every dataset is present or is generated here on first use")
    lines.append(f"estimated compute for the runs to do: {hours:.2f} GPU-hours (H100; cost model in harness/dryrun.py)")
    return "\n".join(lines)


def plan_flag(plan: Plan) -> str:
    """The command-line flag that selects ``plan``."""
    if plan.name.startswith("table"):
        return f"--table {plan.name[len('table'):]}"
    if plan.name.startswith("ablation_"):
        return f"--ablation {plan.name[len('ablation_'):].replace('_', '-')}"
    if plan.name.startswith("figure"):
        return f"--figure {plan.name[len('figure'):]}"
    return plan.name


def _data_source(key: str) -> str:
    """"maze2d-umaze (generated here)" or "pen-human (D4RL/pen/human-v2)"."""
    from suites.errors import DataError
    from suites.registry import dataset_spec
    try:
        spec = dataset_spec(key)
    except DataError:
        return f"{key} (no suite defines it yet)"
    if spec.generated:
        return f"{key} (generated here)"
    ids = [spec.minari_id] if isinstance(spec.minari_id, str) else list(spec.minari_id or ())
    return f"{key} ({' + '.join(ids)})"


def _list_order(name: str) -> tuple[int, int, str]:
    """Tables by number, then ablations by name, then figures by number."""
    for rank, prefix in enumerate(("table", "ablation_", "figure")):
        if name.startswith(prefix):
            number = name[len(prefix):]
            return rank, int(number) if number.isdigit() else 0, name
    return 3, 0, name


def list_plans() -> str:
    """Every table, ablation and figure: flag, title, paper reference, methods run, datasets."""
    lines = []
    for name in sorted(available_plans(), key=_list_order):
        try:
            plan = load_plan(name)
        except PlanError as error:
            lines.append(f"{name}: unusable plan ({error})")
            continue
        if plan.kind == "figure":
            reference = f"paper Figure {plan.name[len('figure'):]}"
        else:
            reference = f"paper Table {plan.paper_table}" if plan.paper_table else "not in the paper"
        methods = ", ".join(plan.methods) or "none (paper numbers only)"
        lines.append(f"{plan_flag(plan):28s} {plan.title}  [{reference}]")
        lines.append(f"{'':28s} runs: {methods}; data: {', '.join(map(_data_source, plan.datasets)) or 'none'}")
    return "\n".join(lines) if lines else "no plans found"
