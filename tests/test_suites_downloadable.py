"""Downloadable suites end to end on tiny Minari datasets made by stepping the real environments.

Each test writes a few short random-action episodes of the suite's real environment, with the
environment's own (dict) observations, under the dataset's real Minari id in the session's tmp
datasets folder; loads it through ``load_offline_dataset`` exactly as a downloaded copy; and
evaluates a random policy with ``evaluate``.
"""
import gymnasium as gym
import gymnasium_robotics
import numpy as np
import pytest

from suites import minari_io, registry
from suites.envs import make_env
from suites.evaluation import RandomAgent, evaluate

gym.register_envs(gymnasium_robotics)

EPISODE_STEPS = [12, 7, 9]


def record_episodes(spec, seed: int) -> tuple[list[dict], gym.Env]:
    """Random-action episodes of the raw environment (dict observations kept as Minari stores them)."""
    env = gym.make(spec.env["id"], max_episode_steps=max(EPISODE_STEPS), **(spec.env.get("kwargs") or {}))
    env.action_space.seed(seed)
    episodes = []
    for i, steps in enumerate(EPISODE_STEPS):
        obs, _ = env.reset(seed=seed + i)
        observations, actions, rewards, terms, truncs = [obs], [], [], [], []
        for t in range(steps):
            action = env.action_space.sample()
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            actions.append(action)
            rewards.append(reward)
            terms.append(terminated)
            truncs.append(truncated or t == steps - 1)
            if terminated:
                break
        episodes.append({"observations": _stack(observations), "actions": np.array(actions, np.float32),
                         "rewards": np.array(rewards), "terminations": np.array(terms), "truncations": np.array(truncs)})
    return episodes, env


def _stack(observations):
    if isinstance(observations[0], dict):
        return {k: _stack([o[k] for o in observations]) for k in observations[0]}
    return np.asarray(observations, np.float32)


@pytest.mark.parametrize("key", ["pen-human", "kitchen-partial", "antmaze-umaze", "walker2d-medium"])
def test_downloadable_suite_loads_and_evaluates(key):
    spec = registry.dataset_spec(key)
    (minari_id,) = spec.minari_ids()
    assert registry.missing_data(key, "paper") is not None
    episodes, raw_env = record_episodes(spec, seed=3)
    minari_io.write_episodes(minari_id, episodes, raw_env.observation_space, raw_env.action_space,
                             env_spec=raw_env.spec)
    assert registry.missing_data(key, "paper") is None

    data = registry.load_offline_dataset(key)
    lengths = [len(e["actions"]) for e in episodes]
    env = make_env(spec, max_steps=10)
    assert data.observations.shape == (sum(lengths), env.observation_space.shape[0])
    assert data.actions.shape == (sum(lengths), raw_env.action_space.shape[0])
    np.testing.assert_array_equal(data.episode_starts, np.concatenate([[0], np.cumsum(lengths)]))
    np.testing.assert_allclose(data.action_low, raw_env.action_space.low)
    # the dataset's rows and the evaluation env's observations use the same flattening
    first = minari_io.flatten_observation(episodes[0]["observations"], batch_dims=1)[0]
    np.testing.assert_allclose(data.observations[0], first)
    np.testing.assert_allclose(env.reset(seed=3)[0], first, rtol=1e-6, atol=1e-6)
    # returns-to-go: recursion within an episode, restarted at each boundary
    for begin, end, ep in zip(data.episode_starts[:-1], data.episode_starts[1:], episodes):
        np.testing.assert_allclose(data.rewards[begin:end], ep["rewards"], rtol=1e-6)
        rtg = data.returns_to_go[begin:end]
        assert rtg[-1] == pytest.approx(data.rewards[end - 1], rel=1e-5, abs=1e-5)
        np.testing.assert_allclose(rtg[:-1], data.rewards[begin:end - 1] + spec.gamma * rtg[1:], rtol=1e-4, atol=1e-4)
        assert data.timeouts[end - 1] or data.terminals[end - 1]

    result = evaluate(RandomAgent(seed=0), key, episodes=3, seed=5, max_steps=10, chunk_size=2)
    assert result.returns.shape == result.normalized.shape == result.lengths.shape == (3,)
    assert np.all((result.lengths >= 1) & (result.lengths <= 10))
    np.testing.assert_allclose(result.normalized, 100 * (result.returns - spec.ref_min) / (spec.ref_max - spec.ref_min))
    if spec.success == "none":
        assert result.success is None
    else:
        assert result.success.shape == (3,) and result.success.dtype == bool
