"""Timing shared by the benchmarks: wall milliseconds per call, synchronised on CUDA."""
from __future__ import annotations

import time
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
