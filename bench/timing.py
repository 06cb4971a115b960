"""Shared by the benchmarks: wall milliseconds per call (synchronised on CUDA), device set-up, CSV output."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import torch

WARMUP_CALLS = 10  # not in paper: enough for allocator, cuDNN/SDPA kernel choice and CUDA-graph capture


def time_calls(call: Callable[[], object], n: int, device: torch.device, warmup: int = WARMUP_CALLS) -> list[float]:
    """Milliseconds of each of ``n`` calls after ``warmup`` untimed ones (synchronised on CUDA)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        call()
    sync()
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def prepare_device(device: str, threads: int | None) -> bool:
    """Check that ``device`` exists (one line on stderr when it does not) and set torch's CPU threads."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda asked for, but torch sees no CUDA device", file=sys.stderr)
        return False
    if threads:
        torch.set_num_threads(threads)
    return True


def write_csv(df, out: Path | None) -> None:
    """``df`` to ``out`` (folders made), when an output path was given."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False)
        print(f"wrote {out}")
