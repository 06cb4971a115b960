"""The conformance suite every registered method passes (design §3, docs/interfaces.md "Agents").

Each method is fitted a handful of steps (its smoke profile's model, resolved exactly as the
harness resolves a run's config) on the generated maze2d-umaze smoke data, then checked through
the Agent protocol: batched actions, save/load, seeding, exact resume, config validation, and the
vector-environment evaluation.
"""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

from harness.config import resolve_config
from harness.methods import METHODS, build_agent
from suites.registry import dataset_spec, load_offline_dataset

DATASET_KEY = "maze2d-umaze"
FIT_STEPS = 4          # a handful: the suite checks the protocol, not learning
NUM_EPISODES = 7       # B parallel episodes
ROLLOUT_STEPS = 6      # act/observe steps compared between agents (fills part of a DT context)

pytestmark = [pytest.mark.parametrize("method", sorted(METHODS)), pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def data():
    return load_offline_dataset(DATASET_KEY, profile="smoke")


def smoke_config(method: str) -> dict:
    config, _ = resolve_config(method, dataset_spec(DATASET_KEY), "smoke", {}, {})
    return config


def fitted(method: str, data, seed: int = 0, steps: int = FIT_STEPS, on_step=None):
    agent = build_agent(method, seed=seed)
    agent.fit(data, smoke_config(method), steps, on_step)
    return agent


@pytest.fixture(scope="module")
def references():
    """method -> (agent fitted FIT_STEPS steps with seed 0, its checkpoint taken midway in on_step)."""
    return {}


@pytest.fixture
def reference(method, data, references):
    if method not in references:
        midway = {}

        def checkpoint(step, metrics):
            assert all(np.isfinite(value) for value in metrics.values())
            if step == FIT_STEPS // 2:
                midway["state"] = roundtrip(agent.state_dict())

        agent = build_agent(method, seed=0)
        agent.fit(data, smoke_config(method), FIT_STEPS, checkpoint)
        references[method] = (agent, midway["state"])
    return references[method]


def rollout(agent, data, steps: int = ROLLOUT_STEPS) -> np.ndarray:
    """Actions [steps, B, act_dim] over a fixed observation stream (dataset rows), with rewards and
    one episode ending midway so per-episode state is exercised."""
    agent.reset(NUM_EPISODES)
    rows = np.arange(NUM_EPISODES) * 13
    actions = []
    for t in range(steps):
        actions.append(agent.act(data.observations[rows + t]))
        dones = np.zeros(NUM_EPISODES, bool)
        dones[2] = t == 2
        agent.observe(data.rewards[rows + t], dones)
    return np.stack(actions)


def roundtrip(state):
    """state_dict -> bytes -> state_dict, as a checkpoint on disk would be."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


def test_actions_are_float32_within_bounds(method, data, reference):
    actions = rollout(reference[0], data)
    assert actions.shape == (ROLLOUT_STEPS, NUM_EPISODES, data.act_dim)
    assert actions.dtype == np.float32
    assert np.isfinite(actions).all()
    assert (actions >= data.action_low).all() and (actions <= data.action_high).all()


def test_save_load_gives_identical_actions(method, data, reference):
    agent = reference[0]
    restored = build_agent(method, seed=123)  # a different seed: everything must come from the state
    restored.load_state_dict(roundtrip(agent.state_dict()))
    np.testing.assert_array_equal(rollout(restored, data), rollout(agent, data))


def test_same_seed_same_actions(method, data, reference):
    again = fitted(method, data, seed=0)
    np.testing.assert_array_equal(rollout(again, data), rollout(reference[0], data))
    other = fitted(method, data, seed=1)
    assert not np.array_equal(rollout(other, data), rollout(reference[0], data))


def test_resume_from_midway_checkpoint_is_exact(method, data, reference):
    """The harness's checkpointing: state_dict saved in on_step, loaded into a fresh agent, fit to
    the same total steps -> the same agent as training straight through."""
    agent, midway_state = reference
    resumed = build_agent(method, seed=0)
    resumed.load_state_dict(copy.deepcopy(midway_state))
    resumed.fit(data, smoke_config(method), FIT_STEPS)
    np.testing.assert_array_equal(rollout(resumed, data), rollout(agent, data))


def test_unknown_config_key_raises(method, data):
    agent = build_agent(method, seed=0)
    with pytest.raises(ValueError, match="no_such_key"):
        agent.fit(data, {**smoke_config(method), "no_such_key": 1}, 1)


def test_vector_env_evaluation(method, reference):
    from suites.evaluation import evaluate

    result = evaluate(reference[0], DATASET_KEY, episodes=NUM_EPISODES, seed=0, max_steps=20)
    assert result.returns.shape == (NUM_EPISODES,)
    assert np.isfinite(result.normalized).all()
    assert ((result.lengths >= 1) & (result.lengths <= 20)).all()
