"""The Agent protocol every method implements: MAGE and every baseline (design §3).

An agent is built with ``Agent(seed=..., device=...)`` and learns its dimensions from the data
given to ``fit``. ``state_dict()`` carries everything needed to act AND to resume training exactly
(networks, optimisers, RNG states, the step counter, the resolved config, data statistics);
``load_state_dict`` on a fresh agent restores it. Calling ``fit`` on a restored agent with the same
``steps`` continues from the stored step, so the harness checkpoints by saving ``state_dict()``
inside ``on_step``.

``mage/`` and ``baselines/`` satisfy this protocol structurally; they need not import this module.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

# on_step(step, metrics): called after every optimisation step; step counts from 1.
# metrics maps names (e.g. "loss", "loss/ce") to Python floats. The harness uses it for
# progress, training curves, NaN detection and periodic checkpoints.
OnStep = Callable[[int, dict[str, float]], None]


@runtime_checkable
class Agent(Protocol):
    def fit(self, data: Any, config: dict[str, Any], steps: int, on_step: OnStep | None = None) -> None:
        """Train on ``data`` (a suites.dataset.OfflineDataset) until ``steps`` optimisation steps.

        ``config`` holds overrides of the method's config dataclass fields (unknown keys raise
        ValueError naming the key). Raises FloatingPointError when a loss becomes NaN/inf.
        """

    def reset(self, num_envs: int) -> None:
        """Start ``num_envs`` new episodes (clears per-episode context, RTG targets, plans)."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs [B, obs_dim] float32 -> actions [B, act_dim] float32 within the action bounds."""

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        """rewards [B], dones [B] bool after each env step (RTG bookkeeping); may be a no-op."""

    def state_dict(self) -> dict[str, Any]:
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...
