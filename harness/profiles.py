"""Run profiles smoke / quick / paper (design §4), read from harness/profiles.yaml.

A profile fixes what the harness decides (seeds, evaluation episodes and horizon, checkpoint
interval); training steps and model sizes come from each Agent class's ``PROFILES`` attribute.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PROFILES_FILE = Path(__file__).parent / "profiles.yaml"
PROFILE_NAMES = ("smoke", "quick", "cpu", "paper", "h100-budget")


@dataclass(frozen=True)
class Profile:
    name: str                    # smoke | quick | cpu | paper | h100-budget
    seeds: int                   # training seeds per cell
    eval_episodes: int | None    # None: the suite's evaluation episodes per seed
    eval_max_steps: int | None   # None: the suite's episode horizon
    checkpoint_every: int        # optimisation steps between checkpoints
    curve_points: int            # about how many points of each training curve are kept
    periodic_evals: int = 0      # evaluations spread evenly over training after the method's first_policy_step
                                 # (0: none), for score-against-steps curves
    periodic_episodes: int = 0   # episodes of each of them
    agent_profile: str = ""      # which Agent PROFILES entry sizes the models ("" = this profile's name)
    data_profile: str = ""       # which size of generated datasets to use ("" = this profile's name)
    steps_scale: float = 1.0     # multiplies the Agent profile's training steps (budget profiles)

    @property
    def agent_size(self) -> str:
        return self.agent_profile or self.name

    @property
    def data_size(self) -> str:
        return self.data_profile or self.name


def load_profile(name: str) -> Profile:
    """The profile called ``name``; ValueError (one line) for an unknown one."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r}; use one of {', '.join(PROFILE_NAMES)}")
    raw = yaml.safe_load(PROFILES_FILE.read_text())[name]
    return Profile(name=name, **raw)
