"""Method-specific checks of the baselines (the shared protocol is in test_conformance.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from baselines.bc import BCAgent
from baselines.common import Normaliser, TransitionSampler
from baselines.cql import CQLAgent, cql_penalty
from baselines.dt import DTAgent, undiscounted_returns_to_go
from baselines.iql import IQLAgent, expectile_loss
from suites.dataset import OfflineDataset


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic(num_steps: int = 2000, episode_len: int = 50, seed: int = 0, action_scale: float = 1.0,
              low: float = -1.0, high: float = 1.0) -> OfflineDataset:
    """Episodes where the expert action is a fixed function of the observation (learnable by BC)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(num_steps, 3)).astype(np.float32)
    unit = np.tanh(obs[:, :2] * action_scale)
    actions = (low + (unit + 1) / 2 * (high - low)).astype(np.float32)
    starts = np.arange(0, num_steps + 1, episode_len, dtype=np.int64)
    timeouts = np.zeros(num_steps, bool)
    timeouts[starts[1:] - 1] = True
    return OfflineDataset("synthetic", obs, actions, (obs[:, 0] > 0).astype(np.float32), np.zeros(num_steps, bool),
                          timeouts, starts, 0.99, action_low=np.full(2, low, np.float32),
                          action_high=np.full(2, high, np.float32))


def test_expectile_loss_known_case():
    # u = [1, -2], τ = 0.7: weights [0.7, 0.3] -> mean(0.7·1, 0.3·4) = 0.95
    assert expectile_loss(torch.tensor([1.0, -2.0]), 0.7).item() == pytest.approx(0.95)
    # τ = 0.5 is half the mean squared error
    u = torch.tensor([0.5, -1.5, 2.0])
    assert expectile_loss(u, 0.5).item() == pytest.approx(0.5 * (u ** 2).mean().item())


def test_cql_penalty_pushes_data_q_up_and_proposals_down():
    B, R = 4, 3
    q_data = torch.zeros(B, requires_grad=True)
    q_rand = torch.zeros(B, R, requires_grad=True)
    zeros = torch.zeros(B, R)
    penalty = cql_penalty(q_data, q_rand, zeros, zeros, zeros, zeros, act_dim=2, importance_sample=False, temp=1.0)
    # equal Q everywhere: logsumexp over 3R + 1 equal values minus the data value = log(3R + 1) > 0
    np.testing.assert_allclose(penalty.detach().numpy(), np.log(3 * R + 1), rtol=1e-6)
    penalty.sum().backward()
    assert (q_data.grad < 0).all()   # minimising the penalty raises Q on dataset actions
    assert (q_rand.grad > 0).all()   # and lowers it on proposal actions
    # with the data value inside the logsumexp the penalty is >= 0 and vanishes when data Q dominates
    high = cql_penalty(torch.full((B,), 10.0), zeros, zeros, zeros, zeros, zeros, 2, False, 1.0)
    assert ((high >= 0) & (high < 1e-3)).all()
    # importance-sampled CQL(H) leaves the data value out: a dominant data action gives a negative penalty
    assert (cql_penalty(torch.full((B,), 10.0), zeros, zeros, zeros, zeros, zeros, 2, True, 1.0) < 0).all()


def test_cql_training_separates_data_actions_from_random_ones():
    """The conservative gap (logsumexp of Q over proposal actions minus Q on the data's) falls. At the
    default critic lr (3e-4) 40 steps moved it by 0.1-0.7% only, a margin any other float trajectory
    could cross; at 3e-3 it falls from 4.55 by 1.0-1.3 over seeds 0-5."""
    data = synthetic()
    agent = CQLAgent(seed=0)
    gaps = []
    agent.fit(data, {"hidden_dim": 32, "batch_size": 64, "cql_alpha": 10.0, "qf_lr": 3e-3}, 40,
              lambda s, m: gaps.append(m["cql_gap"]))
    assert np.mean(gaps[-10:]) < np.mean(gaps[:10]) - 0.5, (gaps[:10], gaps[-10:])


def test_bc_loss_falls():
    losses = []
    BCAgent(seed=0).fit(synthetic(), {"hidden_dim": 32, "batch_size": 64}, 150, lambda s, m: losses.append(m["loss"]))
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])


def test_actions_respect_non_unit_bounds():
    data = synthetic(low=0.0, high=2.0, action_scale=5.0)
    agent = BCAgent(seed=0)
    agent.fit(data, {"hidden_dim": 32, "batch_size": 64}, 100)
    agent.reset(5)
    actions = agent.act(data.observations[:5] * 10)
    assert ((actions >= 0.0) & (actions <= 2.0)).all()
    # the policy learned the [0, 2] mapping, not the [-1, 1] one: actions are centred near 1
    assert abs(float(agent.act(data.observations[:200]).mean()) - float(data.actions[:200].mean())) < 0.3


@pytest.mark.parametrize("agent_cls, field, loss_name", [(BCAgent, "actions", "loss"), (IQLAgent, "rewards", "q_loss")])
def test_nan_loss_raises_floating_point_error(agent_cls, field, loss_name):
    data = synthetic(num_steps=200)
    getattr(data, field)[:] = np.nan
    with pytest.raises(FloatingPointError, match=rf"{loss_name}.*step 1"):
        agent_cls(seed=0).fit(data, {"hidden_dim": 8, "batch_size": 16}, 5)


def test_transition_sampler_pairs_successors_and_skips_timeouts():
    data = synthetic(num_steps=100, episode_len=10)
    data.observations[:, 2] = np.arange(100)  # row id in an observation dimension
    normaliser = Normaliser(np.zeros(3, np.float32), np.ones(3, np.float32), data.action_low, data.action_high, torch.device("cpu"))
    sampler = TransitionSampler(data, normaliser, data.rewards, torch.device("cpu"))
    obs, _, _, next_obs, dones = sampler.sample(1000)
    rows, next_rows = obs[:, 2].long(), next_obs[:, 2].long()
    assert torch.equal(next_rows, rows + 1)
    assert not torch.isin(rows, torch.arange(9, 100, 10)).any()  # time-limit last steps have no successor
    assert dones.sum() == 0


def test_undiscounted_returns_to_go_restart_per_episode():
    rewards = np.array([1, 2, 3, 10, 20], np.float32)
    rtg = undiscounted_returns_to_go(rewards, np.array([0, 3, 5]))
    np.testing.assert_allclose(rtg, [6, 5, 3, 30, 20])


@pytest.fixture(scope="module")
def dt_agent():
    agent = DTAgent(seed=0)
    agent.fit(synthetic(), {"embedding_dim": 16, "num_layers": 1, "seq_len": 3, "batch_size": 8,
                            "warmup_steps": 5, "target_return": 10.0}, 20)
    return agent


def test_dt_context_rolls_per_episode(dt_agent):
    """Two episodes of different lengths: episode 1 ends after 2 steps and restarts; each keeps
    its own last-K window, timesteps and decreasing return-to-go."""
    obs = np.arange(2 * 5 * 3, dtype=np.float32).reshape(5, 2, 3)  # [t, B, obs_dim]
    dt_agent.reset(2)
    for t in range(5):
        dt_agent.act(obs[t])
        dt_agent.observe(np.array([1.0, 2.0], np.float32), np.array([False, t == 1]))
    norm = dt_agent.normaliser
    window0 = dt_agent.ctx_states[0] * norm.obs_std + norm.obs_mean
    np.testing.assert_allclose(window0.numpy(), obs[2:5, 0], rtol=1e-5)       # last K = 3 steps
    assert dt_agent.ctx_timesteps[0].tolist() == [2, 3, 4]
    np.testing.assert_allclose(dt_agent.ctx_rtg[0].numpy(), [8.0, 7.0, 6.0])   # 10 − 1 per step
    # episode 1 restarted after step 1: its new episode has had 3 steps (t = 2, 3, 4)
    window1 = dt_agent.ctx_states[1] * norm.obs_std + norm.obs_mean
    np.testing.assert_allclose(window1.numpy(), obs[2:5, 1], rtol=1e-5)
    assert dt_agent.ctx_timesteps[1].tolist() == [0, 1, 2]
    np.testing.assert_allclose(dt_agent.ctx_rtg[1].numpy(), [10.0, 8.0, 6.0])
    assert dt_agent.return_left.tolist() == [5.0, 4.0]


def test_dt_episodes_do_not_influence_each_other(dt_agent):
    """An episode's actions are the same whether it runs alone or beside another of another length."""
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(6, 2, 3)).astype(np.float32)
    dt_agent.reset(2)
    together = []
    for t in range(6):
        together.append(dt_agent.act(obs[t])[0])
        dt_agent.observe(np.ones(2, np.float32), np.array([False, t == 2]))
    dt_agent.reset(1)
    alone = []
    for t in range(6):
        alone.append(dt_agent.act(obs[t, :1])[0])
        dt_agent.observe(np.ones(1, np.float32), np.array([False]))
    np.testing.assert_allclose(np.stack(together), np.stack(alone), atol=1e-5)


def test_dt_target_return_from_dataset_quantile():
    data = synthetic(num_steps=500, episode_len=50)
    agent = DTAgent(seed=0)
    agent.fit(data, {"embedding_dim": 8, "num_layers": 1, "seq_len": 2, "batch_size": 4,
                     "target_return_quantile": 0.5, "target_return_scale": 2.0}, 0)
    assert agent.target_return == pytest.approx(2.0 * np.quantile(data.episode_returns(), 0.5))


def test_suite_overrides_resolve_and_name_sources():
    import yaml
    from baselines.common import CONFIG_DIR, config_from_overrides

    for agent_cls in (BCAgent, IQLAgent, CQLAgent, DTAgent):
        table = yaml.safe_load((CONFIG_DIR / f"{agent_cls.METHOD}.yaml").read_text())["suites"]
        for suite, values in table.items():
            assert values.get("source"), f"{agent_cls.METHOD}/{suite} names no source"
            config_from_overrides(agent_cls.CONFIG, agent_cls.suite_overrides(suite))
    assert IQLAgent.suite_overrides("antmaze")["iql_tau"] == 0.9          # CORL antmaze
    assert DTAgent.suite_overrides("maze2d")["target_return"] == 280.0   # CORL maze2d
    assert CQLAgent.suite_overrides("no_such_suite") == {}


def test_dt_act_needs_reset_for_the_batch(dt_agent):
    dt_agent.reset(2)
    with pytest.raises(RuntimeError, match=r"reset\(3\)"):
        dt_agent.act(np.zeros((3, 3), np.float32))
