"""MageAgent through the Agent protocol: every ablation switch, learning, determinism, exact resume."""
import copy

import numpy as np
import pytest
import torch

from mage.agent import MageAgent
from mage.config import resolve_config
from mage.data import Normalizer, WindowSampler
from mage.model import MageModel
from mage.training import tokenizer_losses
from tests.mage_fixtures import TEST_CONFIG, point_mass_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ABLATIONS = [
    {}, {"num_scales": 1}, {"num_scales": 8}, {"codebook_size": 8}, {"num_blocks": 3},
    {"scheme": "s"}, {"scheme": "a"}, {"scheme": "a+cql"}, {"scheme": "rsa"},
    {"rtg_in_decoder": False}, {"rtg_in_fine_scales": False}, {"rtg_in_cond_loss": False},
    {"inverse_dynamics": "latent"}, {"adapter_condition": False}, {"decoder_refinement": "direct"}, {"decoder_refinement": "none"},
    {"rtg_mode": "reweight"}, {"rtg_mode": "none"}, {"replan_every": 3},
    {"target_return_quantile": 0.5, "target_return_scale": 1.5}, {"inverse_in_tokenizer": False},
    {"cond_relabel": True}, {"target_rule": "clamped"}, {"target_rule": "fixed"}, {"target_rule": "value"},
    {"rtg_discount": 1.0}, {"rtg_across_cuts": True}, {"generator_inputs": "sampled"}, {"inverse_input": "generated"},
    {"target_rule": "td", "value_steps": 2}, {"inverse_dynamics": "explicit", "explicit_from": "observed"},
    {"target_rule": "rolled"}, {"rtg_estimator": "n_step", "value_steps": 2},
    {"rtg_estimator": "n_step", "value_steps": 2, "rtg_across_cuts": True, "bootstrap_steps": 3},
    {"rtg_dropout": 0.5, "guidance": 2.0}, {"plan_decoder": "base"}, {"plan_decoder": "anchored"},
    {"plan_decoder": "switched", "target_rule": "value"},
    {"rtg_relative": True, "value_steps": 2, "target_rule": "fixed"},
    {"rtg_relative": True, "rtg_estimator": "n_step", "value_steps": 2},
    {"rtg_estimator": "n_step", "value_steps": 2, "plan_samples": 3, "plan_decoder": "anchored"},
    {"stall_steps": 1}, {"ce_weighting": "scale"}, {"advantage_beta": 3.0, "value_steps": 2, "td_expectile": 0.7},
]


@pytest.fixture(scope="module")
def data():
    return point_mass_dataset()


def _obs(data, b=3):
    return data.observations[[0, 35, 70][:b]]


@pytest.mark.parametrize("overrides", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_every_ablation_switch_trains_and_acts(data, overrides):
    agent = MageAgent(seed=0)
    seen = []
    agent.fit(data, {**TEST_CONFIG, **overrides}, 6, lambda step, m: seen.append((step, m)))
    assert [s for s, _ in seen] == list(range(1, 7))
    stage0 = overrides.get("value_steps", 0)   # stage 0 runs only for a config that needs a TD value
    assert [m["stage"] for _, m in seen[:stage0]] == [0.0] * stage0
    assert {m["stage"] for _, m in seen[stage0:]} == {1.0, 2.0}
    assert all(np.isfinite(v) for _, m in seen for v in m.values())
    assert "codebook/perplexity" in seen[stage0][1] and "loss/ce" in seen[-1][1]
    agent.reset(3)
    for _ in range(4):
        act = agent.act(_obs(data))
        assert act.shape == (3, 2) and act.dtype == np.float32
        assert np.all(act >= data.action_low) and np.all(act <= data.action_high)
        agent.observe(np.ones(3, np.float32), np.array([False, True, False]))


def test_unknown_key_and_nan_loss_raise(data):
    with pytest.raises(ValueError, match="not_a_field"):
        MageAgent(seed=0).fit(data, {**TEST_CONFIG, "not_a_field": 1}, 2)
    broken = copy.deepcopy(data)
    broken.observations[:] = np.nan
    with pytest.raises(FloatingPointError, match=r"loss.* at step 1"):
        MageAgent(seed=0).fit(broken, TEST_CONFIG, 2)


@pytest.mark.parametrize("enabled", [True, False])
def test_stage_one_inverse_loss_trains_the_encoder_only_when_switched_on(data, enabled):
    """inverse_in_tokenizer: L_inv joins stage 1 and its gradient reaches E through the straight-through f_hat."""
    torch.manual_seed(0)
    model = MageModel(resolve_config({**TEST_CONFIG, "inverse_in_tokenizer": enabled}), data.obs_dim, data.act_dim)
    norm = Normalizer.from_data(data, 1.0, 1.0)
    sampler = WindowSampler(data, norm, model.layout, model.cfg.horizon, torch.device("cpu"))
    _, metrics, _ = tokenizer_losses(model, sampler.sample(16, torch.Generator().manual_seed(0)), None)
    stage1 = {id(p) for p in model.stage_parameters(1)}
    assert all((id(p) in stage1) == enabled for p in model.latent_inverse.parameters())
    assert ("loss/inv" in metrics) == enabled
    if enabled:
        metrics["loss/inv"].backward()
        assert model.encoder.out.weight.grad.abs().sum() > 0
        assert model.quantizer.codebook.weight.grad is None  # the codebook learns from the VQ loss alone


def test_observe_rolls_the_target_return_down_like_dt(data):
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "target_rule": "rolled", "target_return_quantile": 1.0, "target_return_scale": 1.0}, 2)
    starts = data.returns_to_go[data.episode_starts[:-1]]
    agent.reset(2)
    assert np.allclose(agent._rtg, starts.max(), rtol=1e-6)
    agent.observe(np.array([1.0, 0.0]), np.array([False, False]))
    assert np.allclose(agent._rtg, [(starts.max() - 1) / 0.99, starts.max() / 0.99], rtol=1e-6)


def test_tokenizer_reconstruction_and_generator_ce_fall_tenfold():
    """Noise-free dynamics from four starts: windows are a function of (s_0, R_0), so both losses can
    approach zero; measured mean of the first 3 vs last 10 steps of each stage.

    Margins, not one CPU's trajectory: 162 tokenizer + 738 generator steps, where seeds 0-3 fall
    30-52x (reconstruction) and 16-27x (CE) on AVX-512, AVX2 and ATen's portable kernels alike; at
    the former 364 generator steps CE fell 8.2-13x, and 10x failed on some CPUs."""
    data = point_mass_dataset(num_episodes=4, length=30, noise=0.0)
    cfg = {**TEST_CONFIG, "embed_dim": 64, "num_blocks": 2, "tokenizer_width": 32, "codebook_dim": 16,
           "batch_size": 32, "lr": 3e-3, "decoder_refinement": "none", "tokenizer_fraction": 0.18,
           "dead_code_restart_every": 50}
    log = []
    MageAgent(seed=0).fit(data, cfg, 900, lambda step, m: log.append(m))
    recon = [m["loss/recon"] for m in log if "loss/recon" in m]
    ce = [m["loss/ce"] for m in log if "loss/ce" in m]
    assert np.mean(recon[:3]) > 10 * np.mean(recon[-10:]), (recon[:3], recon[-10:])
    assert np.mean(ce[:3]) > 10 * np.mean(ce[-10:]), (ce[:3], ce[-10:])


def _actions(agent, data, steps=3):
    agent.reset(3)
    out = []
    for _ in range(steps):
        out.append(agent.act(_obs(data)))
        agent.observe(np.zeros(3, np.float32), np.zeros(3, bool))
    return np.stack(out)


def test_an_agent_that_stands_still_without_reward_acts_on_a_drawn_plan_until_it_moves(data):
    greedy = MageAgent(seed=0)
    greedy.fit(data, TEST_CONFIG, 6)
    escaping = copy.deepcopy(greedy)
    escaping.cfg.stall_steps = 2
    for agent in (greedy, escaping):
        agent.reset(3)
    obs, moved = _obs(data), _obs(data).copy()
    moved[:, :2] += 1.0
    rewarded = np.array([0.0, 0.0, 1.0])   # the third agent stands still where the reward is
    for step, o in enumerate([obs] * 6 + [moved]):
        a_greedy, a_escaping = greedy.act(o), escaping.act(o)
        drawn = ~np.all(a_greedy == a_escaping, axis=1)
        # at step t the agents have stood still for t steps: from step 2 the first two have stalled; step 6 moves
        assert drawn.tolist() == ([True, True, False] if step in (2, 3, 4, 5) else [False] * 3), (step, drawn)
        for agent in (greedy, escaping):
            agent.observe(rewarded, np.zeros(3, bool))


def test_same_seed_same_actions_and_save_load_identical_actions(data):
    cfg = {**TEST_CONFIG, "dropout": 0.1}
    a, b = MageAgent(seed=3), MageAgent(seed=3)
    a.fit(data, cfg, 8)
    b.fit(data, cfg, 8)
    np.testing.assert_array_equal(_actions(a, data), _actions(b, data))
    restored = MageAgent(seed=99)
    restored.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(_actions(restored, data), _actions(a, data))


@pytest.mark.parametrize("overrides", [{"dropout": 0.1}, {"scheme": "a+cql", "dropout": 0.1}, {"cond_relabel": True},
                                       {"target_rule": "value", "generator_inputs": "sampled", "dropout": 0.1},
                                       {"rtg_estimator": "n_step", "value_steps": 4, "target_rule": "td"},
                                       {"ema_decay": 0.0, "dropout": 0.1}])
def test_resume_from_a_mid_training_checkpoint_is_exact(data, overrides):
    """N steps straight == N/2 steps, save, load into a fresh agent, fit on to N (crosses both stages;
    with value_steps 4, the snapshots fall in stage 0 and stage 1, and the labels are rebuilt on resume)."""
    cfg = {**TEST_CONFIG, **overrides, "tokenizer_fraction": 0.6}
    n, snapshots = 10, {}
    straight = MageAgent(seed=1)
    straight.fit(data, cfg, n, lambda step, m: snapshots.setdefault(step, straight.state_dict()) if step in (3, 7) else None)
    for half in (3, 7):  # mid stage 1 and mid stage 2
        resumed = MageAgent(seed=1)
        resumed.load_state_dict(snapshots[half])
        assert resumed.step == half
        torch.manual_seed(12345)  # the caller's global RNG must not matter
        resumed.fit(data, cfg, n)
        for (name, p), (_, q) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
            assert torch.equal(p, q), (half, name)
        assert resumed.opt2.state_dict()["state"].keys() == straight.opt2.state_dict()["state"].keys()


def test_ema_decay_trains_the_same_weights_and_acts_on_their_stage_2_average(data):
    """ema_decay d: training is unchanged (same losses), the weights after fit are avg <- d avg + (1 - d) w over the
    stage-2 steps (the first one copies w), and periodic evaluations during stage 2 act on that running average."""
    cfg, n = {**TEST_CONFIG, "tokenizer_fraction": 0.5, "ema_decay": 0.0}, 8
    plain_losses, ema_losses, stage2_weights = [], [], []
    plain = MageAgent(seed=2)

    def on_plain_step(step, m):
        plain_losses.append(m["loss"])
        if m["stage"] == 2.0:
            stage2_weights.append([p.detach().clone() for p in plain.model.parameters()])
    plain.fit(data, cfg, n, on_plain_step)
    averaged = MageAgent(seed=2)

    def on_step(step, m):
        ema_losses.append(m["loss"])
        if m["stage"] == 2.0 and step < n:   # mid stage 2: acting reads the running average, not the trained weights
            assert averaged._acting_model() is averaged.ema.module
    averaged.fit(data, {**cfg, "ema_decay": 0.75}, n, on_step)
    assert ema_losses == plain_losses and len(stage2_weights) == 4
    expected = stage2_weights[0]
    for weights in stage2_weights[1:]:
        expected = [0.75 * e + 0.25 * w for e, w in zip(expected, weights)]
    for name_p, got, want, last in zip(averaged.model.named_parameters(), averaged.model.parameters(), expected,
                                       plain.model.parameters()):
        torch.testing.assert_close(got, want, msg=name_p[0])
    moved = [not torch.equal(got, last) for got, last in zip(averaged.model.parameters(), plain.model.parameters())]
    assert any(moved) and averaged.ema is None and averaged._acting_model() is averaged.model
    restored = MageAgent(seed=0)   # the saved agent acts on the average too
    restored.load_state_dict(averaged.state_dict())
    np.testing.assert_array_equal(_actions(restored, data), _actions(averaged, data))
    with pytest.raises(ValueError, match="ema_decay must be in"):
        MageAgent(seed=0).fit(data, {**cfg, "ema_decay": 1.0}, 2)


def test_cond_relabel_adds_the_relabelled_start_loss_to_stage_2_only(data):
    seen = []
    MageAgent(seed=0).fit(data, {**TEST_CONFIG, "cond_relabel": True}, 6, lambda step, m: seen.append(m))
    stage2 = [m for m in seen if m["stage"] == 2.0]
    assert stage2 and all(0 < m["loss/cond_relabel"] < m["loss/cond"] for m in stage2)
    assert all("loss/cond_relabel" not in m for m in seen if m["stage"] == 1.0)


def test_diagnostics_report_every_stage_and_the_response_to_the_target(data):
    from bench.mage_diagnostics import TARGET_FRACTIONS, diagnose
    agent = MageAgent(seed=0)
    agent.fit(data, TEST_CONFIG, 6)
    figures = diagnose(agent, data, goal_xy=np.zeros(2), samples=64)
    assert len(figures["token_accuracy_per_scale"]) == TEST_CONFIG["num_scales"]
    assert all(0.0 <= a <= 1.0 for a in figures["token_accuracy_per_scale"])
    assert len(figures["r0_nats_per_scale"]) == TEST_CONFIG["num_scales"]
    coarse = figures["coarse_displacement_corr"]
    assert len(coarse) == TEST_CONFIG["num_scales"] and all(-1 <= c <= 1 for c in coarse)
    assert any(abs(n) > 1e-4 for n in figures["r0_nats_per_scale"])   # a conditioned generator reads R_0
    blind = MageAgent(seed=0)
    blind.fit(data, {**TEST_CONFIG, "rtg_mode": "none"}, 4)
    assert diagnose(blind, data, samples=64)["r0_nats_per_scale"] == [0.0] * TEST_CONFIG["num_scales"]
    for name in ("action_variance", "recon_state_mse", "inverse_mse_true_Z", "inverse_mse_generated_Z", "plan_start_mse"):
        assert np.isfinite(figures[name]) and figures[name] >= 0, name
    assert [row["fraction"] for row in figures["by_target"]] == list(TARGET_FRACTIONS)
    assert all(row["goal_distance_plan_end"] > 0 for row in figures["by_target"])
    assert "q_ranking" not in figures            # no stage-0 Q to rank by
    assert "return_head_by_goal_distance" in figures   # the default target rule reads a return head
    assert "advantage_weights" not in figures    # trained without advantage weights


def test_diagnostics_show_what_the_q_rank_picks_near_and_far_from_the_goal(data):
    from bench.mage_diagnostics import diagnose
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "rtg_estimator": "n_step", "value_steps": 4}, 10)
    xy = data.observations[:, :2]
    goal = xy[np.argmin(np.linalg.norm(xy - xy.mean(0), axis=1))]      # a data state: some rows lie within 0.5
    figures = diagnose(agent, data, goal_xy=goal, samples=64, path_direction=lambda xy_N2: goal - xy_N2)
    near, far = figures["q_ranking"]["near_goal"], figures["q_ranking"]["far_from_goal"]
    for row in (near, far):
        assert row["states"] >= 2
        assert row["action_norm_q_picked"] > 0 and row["action_norm_greedy"] > 0
        assert -1 <= row["action_path_cosine_q_picked"] <= 1 and -1 <= row["q_norm_correlation"] <= 1
        # q_mean's weighted mean is never longer than its candidates' weighted mean norm (triangle inequality)
        assert 0 < row["q_mean_alignment"] <= 1 + 1e-6 and 0 < row["action_norm_q_mean"]


def test_diagnostics_give_the_advantage_weights_near_the_goal_and_elsewhere(data):
    from bench.mage_diagnostics import diagnose
    from mage.training import EXP_ADV_MAX
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "advantage_beta": 3.0, "value_steps": 4}, 10)
    figures = diagnose(agent, data, goal_xy=np.zeros(2), samples=256)["advantage_weights"]
    assert 0 < figures["effective_sample_share"] <= 1 and 0 <= figures["share_at_clip"] <= 1
    assert 0 < figures["mean"] <= EXP_ADV_MAX
    near, elsewhere = figures["near_goal"], figures["elsewhere"]   # the point mass's data end at the origin
    assert near["share_of_windows"] + elsewhere["share_of_windows"] == pytest.approx(1.0)
    assert near["speed_plain"] > 0 and near["speed_weighted"] > 0


def test_leads_flag_the_episodes_that_start_inside_the_goal_radius():
    from bench.mage_leads import starts_inside_goal
    from suites.envs import make_env
    from suites.mazes import REWARD_RADIUS
    from suites.registry import dataset_spec
    inside = starts_inside_goal("maze2d-umaze", 30, seed=10_000)
    assert inside.shape == (30,) and 0 < inside.sum() < 30      # umaze: 1 start cell in 7 is the goal's
    env = make_env(dataset_spec("maze2d-umaze"))
    for i in (int(np.argmax(inside)), int(np.argmin(inside))):  # one of each, replayed on its own env seed
        obs, info = env.reset(seed=10_000 + i)
        assert (np.linalg.norm(obs[:2] - info["goal"]) <= REWARD_RADIUS) == inside[i]
    assert starts_inside_goal("coinmaze", 3, seed=0) is None    # its reset names no goal: nothing to flag
    from bench.mage_leads import reached_from_outside
    never_navigates = inside.copy()                               # succeeds only where it starts at the goal
    assert reached_from_outside(never_navigates, inside) == 0.0 and never_navigates.mean() > 0
    assert reached_from_outside(~inside, inside) == 1.0
    assert reached_from_outside(inside, None) is None and reached_from_outside(inside, np.ones(30, bool)) is None


def test_leads_critic_variant_fits_a_td_critic_and_keeps_the_target_rule(data):
    """bench/mage_leads.py "critic:tau:n": IQL's V and twin Q fitted beside a run that has none, as stage 0 would
    train them (seeded: two fits agree), the acting target as trained; "samples:n:q_mean:beta" sets the ranking."""
    from bench.mage_leads import variant_agent
    from mage.value import TDValue
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "target_rule": "value"}, 6)
    assert agent.model.td_value is None
    one, two = (variant_agent(agent, "critic:0.8:5+samples:4:q_mean:2", data, 0, seed=3) for _ in range(2))
    assert one.model.td_value is not None and agent.model.td_value is None          # the run itself is untouched
    assert one.cfg.target_rule == "value" and one.cfg.td_expectile == 0.8
    assert (one.cfg.plan_samples, one.cfg.plan_rank, one.cfg.plan_beta) == (4, "q_mean", 2.0)
    for key, value in one.model.td_value.state_dict().items():
        assert torch.equal(value, two.model.td_value.state_dict()[key]), key
    torch.manual_seed(3)                   # the fit's initialisation: 5 TD steps moved it
    untrained = TDValue(one.model.obs_dim, one.model.act_dim, one.model.latent_inverse.net[0].out_features)
    assert not torch.equal(untrained.v[0].weight, one.model.td_value.v[0].weight)
    action = one.act(data.observations[:3])
    assert action.shape == (3, data.act_dim) and np.isfinite(action).all()


def test_leads_critic_flags_fit_in_iqls_units_and_activation_and_answer_in_stage_0_units(data):
    """"critic:tau:n:raw-relu": V and Q fitted on the raw rewards with ReLU (baselines/iql.py's choices), their outputs
    rescaled by 1 / value_scale, so they match a fit on rewards / value_scale up to the fit itself; the run's
    normaliser is left as it was. "seedK" draws the fit with seed K in place of the run's."""
    from bench.mage_leads import Scaled, variant_agent
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "target_rule": "value"}, 6)
    scale = agent.norm.value_scale
    raw = variant_agent(agent, "critic:0.8:200:raw-relu", data, 0, seed=3)
    plain = variant_agent(agent, "critic:0.8:200", data, 0, seed=3)
    assert raw.norm.value_scale == scale
    head = raw.model.td_value
    for net in (head.v, head.q1.net, head.q2.net):
        assert isinstance(net[-1], Scaled) and net[-1].factor == pytest.approx(1 / scale)
        assert any(isinstance(m, torch.nn.ReLU) for m in net) and not any(isinstance(m, torch.nn.GELU) for m in net)
    s_BS = torch.as_tensor(raw.norm.obs(data.observations[:50]).astype(np.float32))
    with torch.no_grad():
        v_raw, v_plain = raw.model.td_value(s_BS)[:, 0], plain.model.td_value(s_BS)[:, 0]
    assert scale > 2      # otherwise the units would not tell apart
    assert abs(float(v_raw.mean() - v_plain.mean())) < 0.5 * float(v_plain.abs().mean()) + 0.05
    # seedK: another draw of the same fit, whatever seed the run passes; the same K gives the same fit
    k1, k1_again, k2 = (variant_agent(agent, f"critic:0.8:5:seed{k}", data, 0, seed=seed)
                        for k, seed in ((11, 3), (11, 4), (12, 3)))
    assert torch.equal(k1.model.td_value.v[0].weight, k1_again.model.td_value.v[0].weight)
    assert not torch.equal(k1.model.td_value.v[0].weight, k2.model.td_value.v[0].weight)
    # ensK: K draws, member 0 the single fit of that seed, acting on the members' mean V and twin-Q minimum
    ens = variant_agent(agent, "critic:0.8:5:seed11-ens2", data, 0, seed=3).model.td_value
    assert len(ens.members) == 2
    for key, value in ens.members[0].state_dict().items():
        assert torch.equal(value, k1.model.td_value.state_dict()[key]), key
    assert not torch.equal(ens.members[1].v[0].weight, k1.model.td_value.v[0].weight)
    a_BA = torch.as_tensor(raw.norm.act(data.actions[:50]).astype(np.float32))
    with torch.no_grad():
        v_members = [member(s_BS) for member in ens.members]
        q_members = [member.q(s_BS, a_BA) for member in ens.members]
        assert torch.allclose(ens(s_BS), (v_members[0] + v_members[1]) / 2)
        assert torch.allclose(ens.q(s_BS, a_BA), (q_members[0] + q_members[1]) / 2)
        assert not torch.allclose(v_members[0], v_members[1])
    action = variant_agent(agent, "critic:0.8:5:ens2+samples:4:q_mean", data, 0, seed=3).act(data.observations[:3])
    assert action.shape == (3, data.act_dim) and np.isfinite(action).all()
    for bad in ("rleu", "ens0", "ens"):
        with pytest.raises(SystemExit, match="unknown critic flag"):
            variant_agent(agent, f"critic:0.8:5:{bad}", data, 0, seed=3)


def test_leads_iql_critic_variant_ranks_candidates_by_a_trained_iql_runs_q(data, tmp_path):
    """bench/mage_leads.py "iql-critic:RUN": the stage-0 Q that q_mean reads becomes the IQL run's twin-Q minimum
    (converted to MAGE's value units, so beta * value_scale * Q is IQL's beta * Q); V(s) stays the fitted one."""
    import json

    from baselines.iql import IQLAgent
    from bench.mage_leads import variant_agent
    iql = IQLAgent(seed=0)
    iql.fit(data, {"hidden_dim": 16, "batch_size": 32}, 5)
    run = tmp_path / "iql-run"
    run.mkdir()
    torch.save({"agent": iql.state_dict()}, run / "checkpoint.pt")
    (run / "result.json").write_text(json.dumps({"method": "iql", "seed": 0}))
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "target_rule": "value"}, 6)
    with pytest.raises(SystemExit, match="put critic"):
        variant_agent(agent, f"iql-critic:{run}", data, 0, seed=3)
    fitted = variant_agent(agent, "critic:0.8:5", data, 0, seed=3)
    borrowed = variant_agent(agent, f"critic:0.8:5+iql-critic:{run}+samples:4:q_mean", data, 0, seed=3)
    obs, act = data.observations[:7].astype(np.float32), data.actions[:7].astype(np.float32)
    s_BS, a_BA = torch.as_tensor(borrowed.norm.obs(obs)), torch.as_tensor(borrowed.norm.act(act))
    with torch.no_grad():
        q_iql = torch.min(*iql.qf.both(iql.normaliser.obs(torch.as_tensor(obs)),
                                       iql.normaliser.to_unit_action(torch.as_tensor(act))))
        q_borrowed = borrowed.model.td_value.q(s_BS, a_BA) * borrowed.norm.value_scale
        assert torch.allclose(q_borrowed, q_iql, atol=1e-5)
        assert not torch.allclose(fitted.model.td_value.q(s_BS, a_BA) * fitted.norm.value_scale, q_iql, atol=1e-3)
        assert torch.equal(borrowed.model.td_value(s_BS), fitted.model.td_value(s_BS))     # V(s) is still the fitted one
    action = borrowed.act(data.observations[:3])
    assert action.shape == (3, data.act_dim) and np.isfinite(action).all()


def test_stage_swap_keeps_one_seeds_tokenizer_and_takes_the_others_stage_2(data):
    from bench.mage_stage_swap import STAGE2_ONLY_PREFIXES, hybrid_state, train_stage_one
    config, steps = dict(TEST_CONFIG, tokenizer_fraction=0.5), 8
    first, second = (train_stage_one(seed, data, config, steps, stage1_end=4) for seed in (0, 1))
    assert first.step == second.step == 4
    state = hybrid_state(first, second)
    for key, value in state["model"].items():
        source = second if key.startswith(STAGE2_ONLY_PREFIXES) else first
        assert torch.equal(value, source.model.state_dict()[key]), key
    assert any(k.startswith(STAGE2_ONLY_PREFIXES) for k in state["model"])
    assert not torch.equal(first.model.state_dict()["encoder.inp.weight"], second.model.state_dict()["encoder.inp.weight"])
    hybrid = MageAgent(seed=0)
    hybrid.load_state_dict(state)
    hybrid.fit(data, config, steps)          # stage 2 runs on from step 4 with the second seed's streams
    assert hybrid.step == steps
    whole = MageAgent(seed=1)
    whole.fit(data, config, steps)           # the second seed's own run: same stage-2 randomness, other tokenizer
    assert torch.equal(hybrid.model.state_dict()["encoder.inp.weight"], first.model.state_dict()["encoder.inp.weight"])
    assert not torch.equal(hybrid.model.state_dict()["generator.head.weight"], whole.model.state_dict()["generator.head.weight"])
    itself = MageAgent(seed=0)
    itself.load_state_dict(hybrid_state(first, first))
    itself.fit(data, config, steps)          # a seed swapped with itself is its own uninterrupted run
    straight = MageAgent(seed=0)
    straight.fit(data, config, steps)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(itself.model.state_dict()[key], value), key


def test_plan_probe_gives_a_plan_and_first_action_per_state_and_target(data):
    from bench.plan_probe import probe
    agent = MageAgent(seed=0)
    agent.fit(data, TEST_CONFIG, 6)
    obs = _obs(data, 2)
    out = probe(agent, obs, (0.0, 0.5, 1.0))
    assert out["plan_NTHS"].shape == (2, 3, TEST_CONFIG["horizon"], data.observations.shape[1])
    assert out["action_NTA"].shape == (2, 3, 2)
    assert np.all(out["action_NTA"] >= data.action_low) and np.all(out["action_NTA"] <= data.action_high)
    assert out["trained_target_N"].shape == (2,) and np.all(np.isfinite(out["trained_target_N"]))
    # R_0 is in the condition: the plans at one state differ across targets, and the probe's first
    # action at the run's own target is the one act() takes
    assert not np.allclose(out["plan_NTHS"][:, 0], out["plan_NTHS"][:, 2])
    own = probe(agent, obs, tuple(float(t) for t in out["trained_target_N"][:1]))
    agent.reset(1)
    np.testing.assert_allclose(own["action_NTA"][0, 0], agent.act(obs[:1])[0], atol=1e-5)


def test_plan_probe_counts_what_the_data_do_from_a_state(data):
    from bench.plan_probe import data_choices
    obs = np.asarray(data.observations)
    steps = 3
    choice = data_choices(data, obs[0], steps, (), rtg_scale=1.0)
    in_cell = np.all(np.floor(obs[:, :2]) == np.floor(obs[0, :2]), axis=1)
    episode_end = np.repeat(data.episode_starts[1:], np.diff(data.episode_starts))
    rows = np.nonzero(in_cell & (np.arange(len(obs)) + steps < episode_end))[0]
    assert choice["rows"] == len(rows) >= 1
    dx = obs[rows + steps, 0] - obs[rows, 0]
    assert choice["left_share"] == pytest.approx(np.mean(dx < -0.3))
    assert choice["right_share"] == pytest.approx(np.mean(dx > 0.3))
    if (dx > 0.3).any():
        assert choice["right_rtg"] == pytest.approx(np.asarray(data.returns_to_go)[rows[dx > 0.3]].mean(), rel=1e-5)


def _acting_targets(agent, data, rewards, steps=3):
    """Normalised R_t of each of ``steps`` act calls for 2 envs that receive ``rewards`` each step."""
    agent.reset(2)
    seen = []
    for _ in range(steps):
        obs = data.observations[[0, 35]]
        seen.append(agent._acting_target(torch.as_tensor(agent.norm.obs(obs), dtype=torch.float32))[:, 0].numpy())
        agent.act(obs)
        agent.observe(np.asarray(rewards, np.float32), np.zeros(2, bool))
    return np.stack(seen)


def test_target_rules_set_the_acting_return(data):
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "target_rule": "value", "value_expectile": 0.9, "target_return_scale": 1.0}, 8)
    norm = agent.norm
    start = norm.target_return / norm.rtg_scale
    agent.cfg.target_rule = "rolled"
    rolled = _acting_targets(agent, data, [0.0, 0.0])
    np.testing.assert_allclose(rolled[:, 0], start / 0.99 ** np.arange(3), rtol=1e-5)   # grows without reward
    agent.cfg.target_rule = "clamped"
    clamped = _acting_targets(agent, data, [0.0, 0.0], steps=40)
    assert clamped.max() <= norm.rtg_max + 1e-6 and clamped[-1, 0] == pytest.approx(norm.rtg_max)
    agent.cfg.target_rule = "fixed"
    np.testing.assert_allclose(_acting_targets(agent, data, [1.0, 1.0]), start, rtol=1e-6)
    agent.cfg.target_rule = "value"
    value = _acting_targets(agent, data, [1.0, 1.0])
    s0 = torch.as_tensor(norm.obs(data.observations[[0, 35]]), dtype=torch.float32)
    np.testing.assert_allclose(value[0], agent.model.return_head(s0)[:, 0].detach().numpy(), rtol=1e-6)


def test_the_value_head_learns_an_upper_expectile_of_the_return():
    """V(s) on data whose RTG at a state is 0 or 1 with equal odds: tau 0.9 lands well above the mean 0.5."""
    from mage.value import ReturnHead, expectile_loss
    torch.manual_seed(0)
    head = ReturnHead(2, 32)
    opt = torch.optim.Adam(head.parameters(), lr=1e-2)
    s = torch.zeros(256, 2)
    R = (torch.arange(256) % 2).float()[:, None]
    for _ in range(300):
        loss = expectile_loss(head(s), R, 0.9)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert head(s[:1]).item() == pytest.approx(0.9, abs=0.03)   # the 0.9-expectile of {0, 1} is 0.9


def test_td_activation_builds_the_stage_zero_value_with_relu(data):
    """td_activation relu: V and both Q (and their Polyak targets) use ReLU, IQL's activation, and target_rule td
    acts on that V; gelu (the default) keeps MAGE's; another name is one clear error."""
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "target_rule": "td", "value_steps": 20, "td_activation": "relu"}, 30)
    head = agent.model.td_value
    for net in (head.v, head.q1.net, head.q2.net, head.q1_target.net, head.q2_target.net):
        assert sum(isinstance(m, torch.nn.ReLU) for m in net) == 2 and not any(isinstance(m, torch.nn.GELU) for m in net)
    s_BS = torch.as_tensor(agent.norm.obs(data.observations[:8]).astype(np.float32))
    assert torch.isfinite(agent._acting_target(s_BS)).all()      # target_rule td reads the ReLU V
    gelu = MageModel(resolve_config({**TEST_CONFIG, "target_rule": "td", "value_steps": 20}),
                     data.observations.shape[1], data.actions.shape[1]).td_value
    assert sum(isinstance(m, torch.nn.GELU) for m in gelu.v) == 2
    with pytest.raises(ValueError, match="td_activation"):
        resolve_config({"td_activation": "tanh"})


def test_the_stage_zero_critic_leaves_stages_one_and_two_unchanged_under_monte_carlo_labels(data):
    """With the data's own RTG labels (rtg_estimator monte_carlo) and no advantage weights, the stage-0 critic only
    acts: two runs that differ in its activation train the same tokenizer and generator, bit for bit, while the
    critics themselves differ. So a critic swapped in after training (bench/mage_leads.py "critic") is what that
    run would have trained with it in stage 0, up to the critic's own draw."""
    fitted = {}
    for activation in ("relu", "gelu"):
        agent = MageAgent(seed=0)
        agent.fit(data, {**TEST_CONFIG, "target_rule": "td", "value_steps": 5, "td_activation": activation,
                         "dropout": 0.1}, 20)
        fitted[activation] = agent.model.state_dict()
    relu, gelu = fitted["relu"], fitted["gelu"]
    assert any(not torch.equal(relu[k], gelu[k]) for k in relu if k.startswith("td_value."))
    rest = [k for k in relu if not k.startswith("td_value.")]
    assert rest and all(torch.equal(relu[k], gelu[k]) for k in rest)


def test_stage_zero_td_step_is_iqls_two_optimiser_update():
    """TDValue.loss under one Adam (V and Q losses summed, the twin-Q loss not halved) moves V and Q as
    baselines/iql.py's update does: V's Adam on its expectile loss, then Q's Adam on the halved twin MSE, with
    V(s') read before either step. Adam's step is per parameter and scale-free, so only eps can differ."""
    from baselines.iql import expectile_loss as iql_expectile_loss
    from mage.critic import soft_update
    from mage.value import TDValue
    torch.manual_seed(0)
    ours = TDValue(4, 2, 32)
    ref, initial = copy.deepcopy(ours), copy.deepcopy(ours)
    opt = torch.optim.Adam(ours.trainable_parameters(), lr=1e-3)
    v_opt = torch.optim.Adam(ref.v.parameters(), lr=1e-3)
    q_opt = torch.optim.Adam([*ref.q1.parameters(), *ref.q2.parameters()], lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        B = 64
        batch = {"s0": torch.randn(B, 4, generator=gen), "a0": torch.rand(B, 2, generator=gen) * 2 - 1,
                 "r0": (torch.rand(B, generator=gen) < 0.3).float(), "s1": torch.randn(B, 4, generator=gen),
                 "done0": torch.zeros(B), "has_next0": torch.ones(B)}
        loss = ours.loss(batch, 0.99, 0.7, reward_scale=2.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        ours.update_targets()
        s, a = batch["s0"], batch["a0"]                      # IQL's order: targets first, then V, then Q
        with torch.no_grad():
            target_q = torch.minimum(ref.q1_target(s, a), ref.q2_target(s, a))
            y = batch["r0"] / 2.0 + 0.99 * ref.v(batch["s1"])[:, 0]
        v_loss = iql_expectile_loss(target_q - ref.v(s)[:, 0], 0.7)
        v_opt.zero_grad()
        v_loss.backward()
        v_opt.step()
        q_loss = ((ref.q1(s, a) - y).pow(2).mean() + (ref.q2(s, a) - y).pow(2).mean()) / 2
        q_opt.zero_grad()
        q_loss.backward()
        q_opt.step()
        soft_update(ref.q1_target, ref.q1)
        soft_update(ref.q2_target, ref.q2)
    probe_s, probe_a = torch.randn(32, 4, generator=gen), torch.rand(32, 2, generator=gen) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(ours.v(probe_s), initial.v(probe_s), atol=1e-3)    # it trained
        torch.testing.assert_close(ours.v(probe_s), ref.v(probe_s), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.q(probe_s, probe_a), ref.q(probe_s, probe_a), rtol=1e-4, atol=1e-5)
def test_rtg_across_cuts_runs_on_through_a_continuing_stream():
    import dataclasses
    from mage.data import returns_to_go, segment_starts
    data = dataclasses.replace(point_mass_dataset(num_episodes=3, length=30), continuing=True)
    cut = returns_to_go(data, 0.99, across_cuts=False)
    stream = returns_to_go(data, 0.99, across_cuts=True)
    np.testing.assert_array_equal(cut, data.returns_to_go)
    np.testing.assert_array_equal(segment_starts(data, True), [0, 90])
    # the last row of a cut now carries the next cut's discounted return
    assert stream[29] == pytest.approx(data.rewards[29] + 0.99 * stream[30], rel=1e-5)
    assert cut[29] == pytest.approx(data.rewards[29])
    np.testing.assert_allclose(stream[60:], cut[60:], rtol=1e-6)      # the stream's last cut is unchanged
    norm = Normalizer.from_data(data, 1.0, 1.0, across_cuts=True)
    sampler = WindowSampler(data, norm, MageModel(resolve_config(TEST_CONFIG), 4, 2).layout, 8, torch.device("cpu"), True)
    assert int(sampler.end[25]) == 89        # windows span the cut at row 30
    not_continuing = dataclasses.replace(data, continuing=False)
    np.testing.assert_array_equal(returns_to_go(not_continuing, 0.99, across_cuts=True), data.returns_to_go)


def test_sampled_generation_feeds_each_scale_its_own_samples(data):
    """Alg. 5: scale k's logits depend on the scales < k through the samples drawn from them."""
    from mage.training import sampled_generation
    torch.manual_seed(0)
    model = MageModel(resolve_config(TEST_CONFIG), data.obs_dim, data.act_dim).eval()
    cond = torch.randn(4, data.obs_dim + 1)
    logits, onehots = sampled_generation(model, cond, 1.0)
    assert logits.shape == (4, sum(model.cfg.scales), model.cfg.codebook_size)
    assert [y.shape[1] for y in onehots] == list(model.cfg.scales)
    assert all(torch.all(y.sum(-1) == 1) for y in onehots)
    # the first scale sees only the condition: the teacher-forced pass agrees there
    tf = model.generator(cond, torch.zeros(4, sum(model.cfg.scales[1:]), model.cfg.codebook_dim), model.rtg_index)
    torch.testing.assert_close(logits[:, :1], tf[:, :1].float())
    loss = logits[:, -model.cfg.scales[-1]:].logsumexp(-1).sum()
    loss.backward()   # the finest scale's inputs are made of codebook vectors of the coarser samples
    assert model.quantizer.codebook.weight.grad.abs().sum() > 0


def test_n_step_returns_bootstrap_with_the_value_after_n_steps_and_at_segment_ends():
    """R_t = sum_{i<m} g^i r_{t+i} + g^m B_{t+m}, by hand: inside a segment, at a cut of a continuing stream
    (the next cut's first state), at a time limit (the last stored state) and at a termination (0)."""
    import dataclasses
    from mage.data import n_step_returns
    g = 0.5
    rewards = np.array([1, 0, 2, 0, 1, 3], np.float32)
    value = np.array([10, 20, 30, 40, 50, 60], np.float64)
    data = dataclasses.replace(point_mass_dataset(num_episodes=2, length=3), rewards=rewards,
                               episode_starts=np.array([0, 3, 6]), returns_to_go=None)
    limit = n_step_returns(data, g, 2, value)
    assert limit[0] == pytest.approx(1 + g * 0 + g ** 2 * 30)          # two rewards, then V(s_2)
    assert limit[1] == pytest.approx(0 + g * 2 + g ** 2 * 30)          # the segment ends after row 2: V(s_2) stands in
    assert limit[2] == pytest.approx(2 + g * 30)
    assert limit[5] == pytest.approx(3 + g * 60)
    cut = n_step_returns(dataclasses.replace(data, continuing=True), g, 2, value)
    assert cut[2] == pytest.approx(2 + g * 40) and cut[1] == pytest.approx(g * 2 + g ** 2 * 40)  # the stream goes on at row 3
    assert cut[5] == pytest.approx(3 + g * 60)                          # the stream's end: no successor stored
    stream = n_step_returns(dataclasses.replace(data, continuing=True), g, 2, value, across_cuts=True)
    assert stream[2] == pytest.approx(2 + g * 0 + g ** 2 * 50)          # the window runs through the cut
    terminal = data.terminals.copy()
    terminal[2] = True
    ended = n_step_returns(dataclasses.replace(data, terminals=terminal), g, 2, value)
    assert ended[2] == pytest.approx(2) and ended[1] == pytest.approx(g * 2)
    np.testing.assert_allclose(n_step_returns(data, g, 100, np.zeros(6)), [1.5, 1, 2, 1.25, 2.5, 3])  # V = 0: plain RTG


def test_n_step_labels_come_from_the_stage_zero_value_and_set_the_rtg_statistics(data):
    """After stage 0 the windows carry n-step labels of the frozen TD value, and R's scale, range and the
    td target follow them."""
    from mage.data import n_step_returns
    agent = MageAgent(seed=0)
    cfg = {**TEST_CONFIG, "rtg_estimator": "n_step", "value_steps": 30, "target_rule": "td", "bootstrap_steps": 4,
           "target_return_scale": 1.0}
    agent.fit(data, cfg, 34)
    frozen = copy.deepcopy(agent.model.td_value.state_dict())
    obs = torch.as_tensor(agent.norm.obs(data.observations).astype(np.float32))
    value = agent.model.td_value(obs)[:, 0].detach().numpy() * agent.norm.value_scale
    labels = n_step_returns(data, 0.99, 4, value)
    assert not np.allclose(labels, data.returns_to_go)
    assert agent.norm.rtg_scale == pytest.approx(np.abs(labels).max(), rel=1e-5)
    assert agent.norm.rtg_max == pytest.approx(labels.max() / np.abs(labels).max(), rel=1e-5)
    assert agent.norm.value_scale == pytest.approx(np.abs(data.returns_to_go).max(), rel=1e-6)
    for name, p in agent.model.td_value.state_dict().items():   # stages 1-2 leave the value alone
        assert torch.equal(p, frozen[name]), name
    target = agent._acting_target(obs[:3])
    np.testing.assert_allclose(target[:, 0].numpy(), value[:3] / agent.norm.rtg_scale, rtol=1e-5)
    with pytest.raises(ValueError, match="value_steps"):
        MageAgent(seed=0).fit(data, cfg, 30)
    relative = MageAgent(seed=0)   # rtg_relative: the same labels less V(s_t), wherever R is modelled
    relative.fit(data, {**cfg, "rtg_relative": True, "target_rule": "fixed", "target_return_quantile": 0.5}, 31)
    value_rel = relative.model.td_value(obs)[:, 0].detach().numpy() * relative.norm.value_scale
    advantage = n_step_returns(data, 0.99, 4, value_rel) - value_rel
    sampler = relative._window_sampler(data, labelled=True)
    np.testing.assert_allclose(sampler.rtg.numpy(), advantage / np.abs(advantage).max(), rtol=1e-4, atol=1e-6)
    assert relative.norm.target_return == pytest.approx(np.quantile(advantage[data.episode_starts[:-1]], 0.5), rel=1e-4)
    with pytest.raises(ValueError, match="rtg_relative"):
        resolve_config({"rtg_relative": True, "value_steps": 2, "target_rule": "td"})
    with pytest.raises(ValueError, match="value_steps > 0"):
        resolve_config({"rtg_estimator": "n_step"})
    with pytest.raises(ValueError, match="value_steps > 0"):
        resolve_config({"advantage_beta": 3.0})
    with pytest.raises(ValueError, match="advantage_beta must be >= 0"):
        resolve_config({"advantage_beta": -1.0, "value_steps": 2})


def test_guidance_mixes_the_logits_with_and_without_r0_and_dropped_rows_ignore_r0(data):
    """Classifier-free guidance: l = l(s_0) + w (l(s_0, R_0) - l(s_0)) at every scale, on the tokens the guided
    choice made; a row whose R_0 is dropped gives the same logits whatever R_0 says."""
    from mage.policy import generate
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "rtg_dropout": 0.5, "guidance": 3.0}, 6)
    model = agent.model.eval()
    gen = model.generator
    assert gen.rtg_null is not None and gen.rtg_null.abs().sum() > 0        # the null embedding learnt
    s0 = torch.as_tensor(agent.norm.obs(data.observations[[0, 35, 70]]).astype(np.float32))
    R0 = torch.tensor([[0.1], [0.5], [0.9]])
    cond = model.condition(s0, R0)
    tokens, logits, _ = generate(model, cond)
    with torch.no_grad():
        tf_in = model.quantizer.teacher_forcing_inputs(tokens)
        with_r = gen(cond, tf_in, model.rtg_index)
        without = gen(cond, tf_in, model.rtg_index, rtg_drop_B=torch.ones(3, dtype=torch.bool))
        other_r = gen(model.condition(s0, R0 * 0 + 5.0), tf_in, model.rtg_index, rtg_drop_B=torch.ones(3, dtype=torch.bool))
    torch.testing.assert_close(torch.cat(logits, 1), without + 3.0 * (with_r - without), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(other_r, without)
    assert not torch.allclose(with_r, without)
    _, plain, _ = generate(model, cond, tokens_given=tokens, guidance=1.0)   # unguided: the conditional logits
    torch.testing.assert_close(torch.cat(plain, 1), with_r, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="rtg_dropout"):
        resolve_config({"guidance": 2.0})


def test_sampled_plans_act_on_the_candidate_whose_last_state_the_value_rates_highest(data):
    """plan_samples: candidates = the greedy plan + draws; the action is the explicit head's on the winner."""
    from mage.policy import generate, plan_actions
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "rtg_estimator": "n_step", "value_steps": 4, "plan_samples": 5}, 12)
    model = agent.model.eval()
    s0 = torch.as_tensor(agent.norm.obs(data.observations[[0, 35, 70]]).astype(np.float32))
    R0 = agent._acting_target(s0)
    torch.manual_seed(7)
    acted = plan_actions(model, s0, R0, 1)[:, 0]
    torch.manual_seed(7)
    with torch.no_grad():
        _, _, greedy = generate(model, model.condition(s0, R0))
        _, _, drawn = generate(model, model.condition(s0.repeat(4, 1), R0.repeat(4, 1)), sample=True)
        f_hat = torch.cat([greedy, drawn])
        plans = model.plan_window(f_hat, s0.repeat(5, 1), R0.repeat(5, 1))[:, :, model.layout.states]
        score = model.td_value(plans[:, -1])[:, 0].view(5, 3)
        best = plans.view(5, 3, *plans.shape[1:])[score.argmax(0), torch.arange(3)]
        expected = model.explicit_inverse(best[:, 0], best[:, 1])
    torch.testing.assert_close(acted, expected)
    assert len({tuple(p.flatten().tolist()) for p in drawn.round(decimals=4)}) > 1   # the draws differ
    # plan_rank q: the candidate whose first action the stage-0 twin Q rates highest at s_0; checked with
    # the twin Q as trained and negated, so a rank that ignores Q cannot match both
    model.cfg.plan_rank = "q"
    with torch.no_grad():
        firsts = model.explicit_inverse(plans[:, 0], plans[:, 1]).view(5, 3, -1)
    for _ in range(2):
        torch.manual_seed(7)
        acted_q = plan_actions(model, s0, R0, 1)[:, 0]
        with torch.no_grad():
            q = model.td_value.q(s0.repeat(5, 1), firsts.flatten(0, 1)).view(5, 3)
            for critic in (model.td_value.q1, model.td_value.q2):
                out = critic.net[-1]
                out.weight.neg_(), out.bias.neg_()
        torch.testing.assert_close(acted_q, firsts[q.argmax(0), torch.arange(3)])
    # plan_rank q_mean: the first actions averaged with softmax(beta * value_scale * Q) over the candidates
    # (the critic is back as trained after two negations); a huge beta is the argmax of q
    model.cfg.plan_rank = "q_mean"
    with torch.no_grad():
        q = model.td_value.q(s0.repeat(5, 1), firsts.flatten(0, 1)).view(5, 3)
    for beta, value_scale in ((2.0, 5.0), (0.5, 1.0)):
        model.cfg.plan_beta = beta
        torch.manual_seed(7)
        acted_mean = plan_actions(model, s0, R0, 1, value_scale=value_scale)[:, 0]
        w = torch.softmax(beta * value_scale * q, dim=0)
        torch.testing.assert_close(acted_mean, (w[..., None] * firsts).sum(0))
    model.cfg.plan_beta = 1e9   # candidates that tie (a draw equal to the greedy plan) share the weight: atol
    torch.manual_seed(7)
    torch.testing.assert_close(plan_actions(model, s0, R0, 1)[:, 0], firsts[q.argmax(0), torch.arange(3)],
                               atol=1e-4, rtol=1e-3)
    with pytest.raises(ValueError, match="plan_beta"):
        resolve_config({"plan_beta": 0.0})
    with pytest.raises(ValueError, match="plan_samples"):
        resolve_config({"plan_samples": 4})


def test_switched_decoder_plans_through_d_prime_where_the_value_is_high_and_through_d_elsewhere(data):
    """plan_decoder switched: row b is D'(Z) where V(s_0) >= switch_value, D(Z) where it is below."""
    from mage.policy import generate
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "target_rule": "value", "plan_decoder": "switched"}, 8)
    model = agent.model.eval()
    s0 = torch.as_tensor(agent.norm.obs(data.observations[::9][:16]).astype(np.float32))
    R0 = agent._acting_target(s0)
    with torch.no_grad():
        _, _, f_hat = generate(model, model.condition(s0, R0))
        value = model.return_head(s0)[:, 0]
        model.cfg.switch_value = float(value.median())
        near = value >= model.cfg.switch_value
        adapted, base = (model.plan_window(f_hat, s0, R0, d) for d in ("adapted", "base"))
        switched = model.plan_window(f_hat, s0, R0)
    assert 0 < int(near.sum()) < len(near)
    assert not torch.allclose(adapted, base)
    torch.testing.assert_close(switched[near], adapted[near])
    torch.testing.assert_close(switched[~near], base[~near])
    with pytest.raises(ValueError, match="switched"):
        resolve_config({"plan_decoder": "switched", "target_rule": "fixed"})


def test_diagnostics_give_the_return_head_by_distance_to_the_goal(data):
    from bench.mage_diagnostics import diagnose
    agent = MageAgent(seed=0)
    agent.fit(data, {**TEST_CONFIG, "target_rule": "value"}, 30)
    agent.model.cfg.switch_value = 0.2
    bands = diagnose(agent, data, goal_xy=np.zeros(2), samples=64)["return_head_by_goal_distance"]
    assert sum(b["states"] for b in bands) == len(data.observations)
    assert [b["distance_from"] for b in bands] == sorted(b["distance_from"] for b in bands)
    for b in bands:
        assert b["q10"] <= b["mean"] <= b["q90"] and 0 <= b["share_at_or_above_switch_value"] <= 1
    obs = data.observations
    with torch.no_grad():
        value = agent.model.return_head(torch.as_tensor(agent.norm.obs(obs).astype(np.float32)))[:, 0].numpy()
    inside = np.linalg.norm(obs[:, :2], axis=1) < 0.5
    assert bands[0]["distance_to"] == 0.5 and bands[0]["states"] == int(inside.sum())
    assert bands[0]["mean"] == pytest.approx(float(value[inside].mean()), rel=1e-5)
    assert bands[0]["share_at_or_above_switch_value"] == pytest.approx(float((value[inside] >= 0.2).mean()))


def test_goal_stay_figures_split_generator_from_critic():
    """bench/goal_stay.py: at goal steps, the share of stay-like candidates (the generator) and the q_mean weight
    they carry (the critic), on two hand-made episodes: one sits at the goal, one passes through it."""
    from bench.goal_stay import goal_stay_figures, stay_action
    goal = np.array([1.0, 1.0])
    assert np.allclose(stay_action(np.array([[0.0, 1.0]]), np.zeros((1, 2)), goal), [[1.0, 0.0]])
    assert np.allclose(stay_action(goal[None], np.array([[0.5, 0.0]]), goal), [[-0.5, 0.0]])   # brakes
    # episode 1 passes through at speed 1: at the goal at t = 0, 1 (stay action (-1, 0)), out at t = 2, 3
    x1 = [1.0, 1.2, 1.6, 2.0]
    cands = np.zeros((4, 2, 2))
    cands[:, 0, 0] = [0.1, 0.1, 1.0, 1.0]       # episode 0 (stay action 0): two candidates near it
    cands[:, 1, 0] = [-1.0, -1.0, 1.0, 1.0]     # episode 1: two brake, two push on
    weights = np.array([[0.1, 0.1], [0.1, 0.1], [0.4, 0.4], [0.4, 0.4]])   # the critic prefers pushing on
    steps = [{"obs": np.array([[1.0, 1.0, 0.0, 0.0], [x, 1.0, 1.0, 0.0]]), "cands": cands, "weights": weights,
              "action": np.array([[0.0, 0.0], [1.0, 0.0]]), "alive": np.ones(2, bool)} for x in x1]
    figures = goal_stay_figures(steps, goal, radius=0.5)
    assert figures["episodes_reaching"] == 2 and figures["left_again"] == 1
    assert figures["goal_steps_per_reaching_episode"] == pytest.approx((4 + 2) / 2)
    assert figures["stay_like_share"] == pytest.approx(0.5) and figures["no_stay_like_candidate"] == 0.0
    assert figures["stay_like_q_weight"] == pytest.approx(0.2)
    assert figures["acted_error"] == pytest.approx((4 * 0.0 + 2 * 2.0) / 6)
    assert figures["speed_at_goal"] == pytest.approx((4 * 0.0 + 2 * 1.0) / 6)
    no_candidates = [{**step, "cands": None, "weights": None} for step in steps]   # an agent without candidates
    acted_only = goal_stay_figures(no_candidates, goal, radius=0.5)
    assert acted_only["stay_like_share"] is None and acted_only["acted_error"] == figures["acted_error"]
    steps[0]["alive"] = np.array([True, False])   # an ended episode's steps are not counted
    assert goal_stay_figures(steps[:1], goal, radius=0.5)["episodes_reaching"] == 1
