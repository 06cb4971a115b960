"""suites.evaluation.evaluate against a plain one-env loop, across chunk sizes, on real MuJoCo envs."""
import numpy as np
import pytest

from suites import registry
from suites.envs import make_env
from suites.evaluation import evaluate

KEY = "walker2d-medium"   # a terminating env: episodes end at different steps
MAX_STEPS = 60


class LinearAgent:
    """Deterministic stateless policy a = tanh(obs @ W); records every call it gets."""

    def __init__(self, obs_dim: int, act_dim: int):
        self.weights = np.random.default_rng(0).normal(0, 0.6, (obs_dim, act_dim)).astype(np.float32)
        self.resets, self.observed = [], []

    def reset(self, num_envs: int) -> None:
        self.resets.append(num_envs)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.tanh(obs @ self.weights)

    def observe(self, rewards: np.ndarray, dones: np.ndarray) -> None:
        self.observed.append((rewards.copy(), dones.copy()))


def plain_loop(agent, spec, seed: int):
    """Return, length of one episode in one env, without any vector env."""
    env = make_env(spec, max_steps=MAX_STEPS)
    obs, _ = env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(agent.act(obs[None])[0])
        total, steps, done = total + reward, steps + 1, terminated or truncated
    return total, steps


@pytest.fixture(scope="module")
def spec_and_agent():
    spec = registry.dataset_spec(KEY)
    env = make_env(spec)
    return spec, LinearAgent(env.observation_space.shape[0], env.action_space.shape[0])


def test_matches_plain_loop_and_ignores_finished_envs(spec_and_agent):
    spec, agent = spec_and_agent
    result = evaluate(agent, KEY, episodes=5, seed=11, max_steps=MAX_STEPS)
    expected = [plain_loop(agent, spec, 11 + i) for i in range(5)]
    # float32 matmul rounding differs between batch sizes and MuJoCo amplifies it a little
    np.testing.assert_allclose(result.returns, [r for r, _ in expected], rtol=1e-3)
    np.testing.assert_array_equal(result.lengths, [n for _, n in expected])
    assert len(set(result.lengths.tolist())) > 1          # some episodes ended early: the masking matters
    assert result.success is None
    # observe: dones never revert, finished episodes get reward 0, and the last call has all done
    dones = np.array([d for _, d in agent.observed])
    rewards = np.array([r for r, _ in agent.observed])
    assert dones[-1].all() and np.all(dones[1:] >= dones[:-1])
    assert np.all(rewards[1:][dones[:-1]] == 0.0)
    np.testing.assert_allclose(rewards.sum(axis=0), result.returns, rtol=1e-5)


def test_results_do_not_depend_on_chunk_size(spec_and_agent):
    _, agent = spec_and_agent
    agent.resets.clear()
    whole = evaluate(agent, KEY, episodes=5, seed=3, max_steps=MAX_STEPS)
    chunked = evaluate(agent, KEY, episodes=5, seed=3, max_steps=MAX_STEPS, chunk_size=2)
    assert agent.resets == [5, 2, 2, 1]
    np.testing.assert_allclose(whole.returns, chunked.returns, rtol=1e-5)   # batched matmul rounding only
    np.testing.assert_array_equal(whole.lengths, chunked.lengths)
    other_seed = evaluate(agent, KEY, episodes=5, seed=4, max_steps=MAX_STEPS)
    assert not np.array_equal(other_seed.returns, whole.returns)


def test_rejects_zero_episodes():
    with pytest.raises(ValueError, match="episodes"):
        evaluate(None, KEY, episodes=0, seed=0)


@pytest.mark.parametrize("key", ["maze2d-umaze", "antmaze-umaze", "pointmaze-giant"])
def test_maze_envs_leave_no_model_file_behind(key, tmp_path, monkeypatch):
    """Gymnasium-Robotics and OGBench write each maze's MuJoCo model to a temporary .xml and keep
    it; make_env removes it, and the env still runs."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    env = make_env(registry.dataset_spec(key), seed=0)
    obs, *_ = env.step(env.action_space.sample())
    assert np.isfinite(obs).all()
    assert list(tmp_path.glob("*.xml")) == []
    env.close()
