"""Live metrics of one run: TensorBoard event files in its run folder, and the same scalars handed
to a sink (a Ray trial's ``tune.report``), so a run can be watched while it trains.

Scalars, by TensorBoard tag:

    <metric>            every metric the agent reports to ``on_step`` under its own name: ``loss``,
                        ``loss/ce``, ``codebook/usage`` (MAGE), ``cql_gap`` (CQL), ...
    lr/<optimiser>      the learning rate of each torch optimiser the agent holds as an attribute
                        (``lr/opt1``, ``lr/actor_optimizer``, ...), read from the optimiser itself, so
                        warm-ups and schedules show as they are; ``lr/<optimiser>/<i>`` per param
                        group when it has several. An agent that keeps its optimisers elsewhere gets
                        no lr scalar rather than a guessed one.
    perf/steps_per_s    optimisation steps per wall second since the previous point, periodic
                        evaluations and checkpoints excluded (from the second point of an attempt on)
    eval/score          each periodic evaluation: mean normalised score, eval/score_se its standard
                        error over the episodes, eval/success the success rate where the suite has one

Points: every ``log_every`` steps (about LIVE_POINTS per run), the final step, and each periodic
evaluation; the x-axis is the optimisation step. These files are for watching: result.json stays
the only source of truth. A run resumed from its checkpoint at step C opens its writer with
``purge_step = C + 1``, so TensorBoard drops what a killed attempt wrote after its checkpoint and
the curve goes on without gap or duplicate (the writer is flushed before every checkpoint, so
everything up to C is on disk).
"""
from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

LIVE_POINTS = 1000   # not in design: ~1,000 points per scalar keep a paper run's event file near 1 MB
FLUSH_S = 10         # seconds between writes to disk while training, for a live view
EVENT_FILE_GLOB = "events.out.tfevents.*"

Sink = Callable[[int, dict[str, float]], None]   # (step, {tag: value}) at every point


class LiveMetrics:
    """Writes a run's scalars to TensorBoard event files in ``run_dir`` and passes them to ``sink``.

    ``resumed_at``: the step of the checkpoint the run resumes from (0 for a fresh start).
    """

    def __init__(self, run_dir: Path, total_steps: int, resumed_at: int, sink: Sink | None = None):
        self.total_steps = total_steps
        self.log_every = max(1, total_steps // LIVE_POINTS)
        self.sink = sink
        self.writer = _open_writer(Path(run_dir), resumed_at)
        self._last_step, self._last_time, self._paused_s = resumed_at, None, 0.0

    def on_step(self, step: int, metrics: dict[str, float], agent: Any) -> None:
        """After optimisation step ``step``: the agent's metrics, learning rates and throughput."""
        if step % self.log_every and step != self.total_steps:
            return
        now = time.perf_counter()
        scalars = {**metrics, **learning_rates(agent)}
        if self._last_time is not None:   # the first point of an attempt has no interval of steps behind it
            scalars["perf/steps_per_s"] = (step - self._last_step) / max(now - self._last_time - self._paused_s, 1e-9)
        self._last_step, self._last_time, self._paused_s = step, now, 0.0
        self._emit(step, scalars)

    def on_eval(self, point: dict[str, Any]) -> None:
        """A periodic evaluation ({step, score, se, success, episodes}, harness.runs.periodic_evaluation)."""
        scalars = {"eval/score": point["score"], "eval/score_se": point["se"]}
        if point["success"] is not None:
            scalars["eval/success"] = point["success"]
        self._emit(point["step"], scalars)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Time spent inside (evaluations, checkpoints) does not count as training time in steps/s."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self._paused_s += time.perf_counter() - start

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _emit(self, step: int, scalars: dict[str, float]) -> None:
        if self.writer is not None:
            for tag, value in scalars.items():
                self.writer.add_scalar(tag, float(value), global_step=step)
        if self.sink is not None:
            self.sink(step, scalars)


def learning_rates(agent: Any) -> dict[str, float]:
    """{"lr/<attribute>": rate} for every torch optimiser among the agent's attributes."""
    import torch
    rates = {}
    for name, value in sorted(vars(agent).items()):
        if isinstance(value, torch.optim.Optimizer):
            groups = value.param_groups
            for index, group in enumerate(groups):
                rates[f"lr/{name}" if len(groups) == 1 else f"lr/{name}/{index}"] = float(group["lr"])
    return rates


_WARNED: list[bool] = []


def _open_writer(run_dir: Path, resumed_at: int):
    """A tensorboardX writer on ``run_dir`` that purges what earlier attempts wrote after ``resumed_at``;
    None (and one warning per process) when tensorboardX is absent, as on the lent GPU machines."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        if not _WARNED:
            _WARNED.append(True)
            print("live metrics off: tensorboardX is not installed, so runs write no TensorBoard files "
                  "(pip install tensorboardX)", file=sys.stderr)
        return None
    _wait_to_sort_after(list(run_dir.glob(EVENT_FILE_GLOB)))
    # Every attempt starts its file with a SessionLog START at purge_step, the first one too:
    # TensorBoard's Python reader takes a run's first START as its start and only later ones as restarts.
    return SummaryWriter(logdir=str(run_dir), flush_secs=FLUSH_S, purge_step=resumed_at + 1)


def _wait_to_sort_after(event_files: list[Path]) -> None:
    """TensorBoard reads a folder's event files in name order, and tensorboardX names a file by the
    second it was opened (events.out.tfevents.<seconds>.<host>): an attempt that starts within the
    second of an earlier one waits for the next second, so its file sorts after (and is not) the
    earlier one. The wait is capped, so a file from a node whose clock runs ahead cannot stall a run."""
    newest = max((int(path.name.split(".")[3]) for path in event_files), default=-1)
    give_up = time.time() + 2.0
    while int(time.time()) <= newest and time.time() < give_up:
        time.sleep(0.05)
