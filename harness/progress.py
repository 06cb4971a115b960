"""Progress bars on stderr (tqdm): runs done / total with an ETA, and each running run's training steps."""
from __future__ import annotations

import sys

from tqdm import tqdm


class SweepProgress:
    """One bar for the sweep (runs) and one per running run (optimisation steps)."""

    def __init__(self, total_runs: int, done_runs: int, enabled: bool = True):
        self.enabled = enabled
        self.runs = tqdm(total=total_runs, initial=done_runs, desc="runs", unit="run", position=0,
                         file=sys.stderr, disable=not enabled, dynamic_ncols=True)
        self.steps: dict[str, tqdm] = {}
        self.failed = 0

    def step(self, run_id: str, step: int, total: int) -> None:
        """The run ``run_id`` has finished ``step`` of ``total`` optimisation steps."""
        bar = self.steps.get(run_id)
        if bar is None:
            bar = self.steps[run_id] = tqdm(total=total, desc=run_id, unit="step", leave=False, file=sys.stderr,
                                            position=len(self.steps) + 1, disable=not self.enabled,
                                            dynamic_ncols=True)
        bar.update(step - bar.n)

    def run_finished(self, run_id: str, status: str) -> None:
        bar = self.steps.pop(run_id, None)
        if bar is not None:
            bar.close()
        self.failed += status == "failed"
        self.runs.update(1)
        if self.failed:
            self.runs.set_postfix(failed=self.failed)

    def close(self) -> None:
        for bar in self.steps.values():
            bar.close()
        self.runs.close()
