"""The suites whose data are generated here: maze2d, multi2d, pointmaze-giant (OGBench), coinmaze.

Real PointMaze / OGBench / coin-maze environments and real Minari files in a tmp folder.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from suites import coinmaze, mazes, ogbench_maze


@pytest.fixture()
def minari_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


@pytest.fixture(scope="module")
def smoke_minari_dir(tmp_path_factory):
    """One Minari folder for the registry tests of this module, so maze2d-umaze smoke is generated once."""
    folder = tmp_path_factory.mktemp("smoke") / "minari"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINARI_DATASETS_PATH", str(folder))
        yield folder


def run_expert(env, seed: int) -> tuple[bool, float]:
    """One episode of the noise-free waypoint controller; (reached the goal?, return)."""
    obs, _ = env.reset(seed=seed)
    unwrapped = env.unwrapped
    controller = mazes.WaypointController(unwrapped.layout, np.random.default_rng(seed))
    controller.set_target(obs[:2].astype(np.float64), unwrapped.goal_xy)
    success, total, done = False, 0.0, False
    while not done:
        action, _ = controller.act(obs[:2].astype(np.float64), obs[2:4].astype(np.float64))
        obs, reward, terminated, truncated, info = env.step(action)
        success, total, done = success or info["success"], total + reward, terminated or truncated
    return success, total


@pytest.mark.parametrize("maze", ["umaze", "medium", "large"])
def test_expert_controller_reaches_goal_within_horizon(maze):
    env = mazes.make_maze2d_env(maze)
    results = [run_expert(env, seed) for seed in range(12)]
    assert np.mean([s for s, _ in results]) >= 0.9
    # the expert stays at the goal once there, so it earns reward on a good part of the horizon
    assert np.mean([r for _, r in results]) > 0.2 * mazes.HORIZONS[maze]


def test_random_policy_rarely_earns_reward_on_large_maze():
    env = mazes.make_maze2d_env("large")
    env.action_space.seed(0)
    returns = []
    for seed in range(5):
        env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + reward, terminated or truncated
        returns.append(total)
    assert np.mean(returns) < 0.1 * 800   # the expert earns > 0.2 * 800 (test above)


def test_maze_coordinates_match_gymnasium_robotics():
    env = mazes.make_maze2d_env("medium").unwrapped
    gym_maze = env._maze_env.maze
    for cell in env.layout.open_cells:
        np.testing.assert_allclose(gym_maze.cell_rowcol_to_xy(np.array(cell)), env.layout.cell_to_xy(cell))
        assert env.layout.xy_to_cell(env.layout.cell_to_xy(cell)) == cell


def test_maze2d_generation_sizes_rewards_and_goals(minari_dir):
    import minari

    mazes.generate_maze2d(minari_id="mage/maze2d-umaze-test-v1", num_steps=1000, seed=0, maze="umaze", progress=False)
    data = minari.load_dataset("mage/maze2d-umaze-test-v1")
    episodes = list(data.iterate_episodes())
    assert [len(e.actions) for e in episodes] == [300, 300, 300, 100]   # umaze horizon 300
    layout = mazes.MAZES["umaze"]
    fixed_goal = layout.cell_to_xy(layout.goal_cell)
    centres = np.array([layout.cell_to_xy(c) for c in layout.open_cells])
    for e in episodes:
        assert e.observations.shape == (len(e.actions) + 1, 4) and e.actions.shape == (len(e.actions), 2)
        assert np.abs(e.actions).max() <= 1.0
        expected = (np.linalg.norm(e.observations[1:, :2] - fixed_goal, axis=1) <= 0.5).astype(np.float32)
        np.testing.assert_array_equal(e.rewards, expected)
        assert e.truncations[-1] and not e.truncations[:-1].any() and not e.terminations.any()
        goals = e.infos["goal"]
        assert goals.shape == (len(e.actions) + 1, 2)
        # each target is an open cell's centre + U(-0.1, 0.1)
        assert np.abs(goals[:, None, :] - centres[None]).max(axis=2).min(axis=1).max() <= 0.1 + 1e-5
    # one continuing stream: an episode starts where the previous one ended
    np.testing.assert_allclose(episodes[1].observations[0], episodes[0].observations[-1])
    all_goals = np.concatenate([e.infos["goal"] for e in episodes])
    assert len(np.unique(np.round(all_goals, 4), axis=0)) >= 5   # ever new targets
    assert sum(e.rewards.sum() for e in episodes) > 0


def test_registry_generates_once_and_recipe_version_changes_id(smoke_minari_dir):
    import dataclasses

    from suites import registry

    first = registry.load_offline_dataset("maze2d-umaze", profile="smoke")
    assert first.num_transitions == 20000 and first.obs_dim == 4 and first.act_dim == 2
    files = sorted(p for p in smoke_minari_dir.rglob("*") if p.is_file())
    assert files
    stamps = {p: p.stat().st_mtime_ns for p in files}
    second = registry.load_offline_dataset("maze2d-umaze", profile="smoke")
    np.testing.assert_array_equal(first.observations, second.observations)
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert sorted(p for p in smoke_minari_dir.rglob("*") if p.is_file()) == files
    spec = registry.dataset_spec("maze2d-umaze")
    bumped = dataclasses.replace(spec, generator={**spec.generator, "recipe_version": spec.generator["recipe_version"] + 1})
    assert registry.generated_minari_id(spec, "smoke") == f"mage/maze2d-umaze-smoke-v{spec.generator['recipe_version']}"
    assert registry.generated_minari_id(bumped, "smoke") != registry.generated_minari_id(spec, "smoke")


def test_multi2d_goal_in_observation_and_relabelled_rewards(smoke_minari_dir):
    from suites import registry

    data = registry.load_offline_dataset("multi2d-umaze", profile="smoke")
    assert data.obs_dim == 6 and data.num_transitions == 20000
    starts = data.episode_starts
    for begin, end in zip(starts[:-1], starts[1:]):
        obs = data.observations[begin:end]
        reached = np.linalg.norm(obs[1:, :2] - obs[:-1, 4:6], axis=1) <= 0.5
        np.testing.assert_array_equal(data.rewards[begin:end - 1], reached.astype(np.float32))
    assert len(np.unique(data.observations[:, 4:6], axis=0)) > 5
    assert registry.dataset_spec("multi2d-umaze").hparams["diffuser"]["goal_obs_slice"] == [4, 6]


@pytest.mark.parametrize("maze", ["umaze", "medium", "large"])
def test_diffuser_goal_hparam_is_the_eval_goal(maze):
    from suites import envs, registry

    spec = registry.dataset_spec(f"maze2d-{maze}")
    env = envs.make_env(spec, seed=0)
    np.testing.assert_allclose(spec.hparams["diffuser"]["goal_xy"], env.unwrapped.goal_xy)
    assert spec.ref_min < spec.ref_max and spec.ref_published["max"] > spec.ref_published["min"]


def test_multi2d_eval_env_varies_start_and_goal():
    env = mazes.make_multi2d_env("large")
    firsts = np.array([env.reset(seed=seed)[0] for seed in range(10)])
    assert firsts.shape == (10, 6)
    assert len(np.unique(np.round(firsts[:, 4:6], 3), axis=0)) >= 4
    assert len(np.unique(np.round(firsts[:, :2], 1), axis=0)) >= 4
    assert np.all(np.linalg.norm(firsts[:, :2] - firsts[:, 4:6], axis=1) > 0.5)   # goal cell != start cell


def test_evaluate_random_agent_on_multi2d_large():
    from suites import evaluation

    result = evaluation.evaluate(evaluation.RandomAgent(), "multi2d-large", episodes=4, seed=0, max_steps=40)
    assert result.returns.shape == (4,) and result.normalized.shape == (4,)
    assert np.all(result.lengths == 40)
    assert result.success is not None and result.success.shape == (4,)


def test_paper_text_variant_fixed_start_random_goal():
    env = mazes.make_maze2d_env("medium", variant="paper_text")
    firsts = np.array([env.reset(seed=seed)[0] for seed in range(8)])
    assert firsts.shape == (8, 6)
    assert np.ptp(firsts[:, :2], axis=0).max() <= 0.2 + 1e-6          # start jitter only
    assert len(np.unique(firsts[:, 4:6], axis=0)) >= 3
    with pytest.raises(ValueError, match="variant"):
        mazes.make_maze2d_env("medium", variant="nope")


def test_coinmaze_rewards_follow_coin_order():
    env = coinmaze.CoinMazeEnv()
    rng = np.random.default_rng(0)
    tour = coinmaze.scripted_episode(env, rng, "silver_gold", 250, action_noise=0.0)
    assert tour["rewards"].sum() == 3.0 and tour["terminations"][-1]
    silver_at = np.argmax(tour["observations"][:, 2] > 0)
    gold_at = np.argmax(tour["observations"][:, 3] > 0)
    assert 0 < silver_at < gold_at < len(tour["observations"]) - 1
    # gold first: it does not count without the silver coin
    gold_first = coinmaze.scripted_episode(env, rng, "gold", 250, action_noise=0.0)
    assert gold_first["rewards"].sum() == 1.0 and gold_first["observations"][:, 3].max() == 0
    # the point never enters a wall cell
    for episode in (tour, gold_first):
        cells = [coinmaze.COIN_MAZE.xy_to_cell(xy) for xy in episode["observations"][:, :2]]
        assert not any(coinmaze.COIN_MAZE.walls[c] for c in cells)


def test_coinmaze_eval_success_only_with_both_coins():
    env = coinmaze.make_coinmaze_env()
    obs, _ = env.reset(seed=0)
    np.testing.assert_allclose(obs[:2], coinmaze.COIN_MAZE.start_xy, atol=0.1)
    np.testing.assert_allclose(obs[4:], coinmaze.COIN_MAZE.goal_xy)
    direct = coinmaze.scripted_episode(env.unwrapped, np.random.default_rng(1), "direct", 250, action_noise=0.0)
    assert direct["rewards"].sum() == 1.0 and direct["terminations"][-1]


def test_coinmaze_generator_writes_mixture(minari_dir):
    import minari

    coinmaze.generate_coinmaze(minari_id="mage/coinmaze-test-v1", num_steps=3000, seed=0, progress=False)
    episodes = list(minari.load_dataset("mage/coinmaze-test-v1").iterate_episodes())
    assert sum(len(e.actions) for e in episodes) == 3000
    returns = np.array([e.rewards.sum() for e in episodes])
    assert {1.0, 2.0} <= set(returns.tolist())       # goal-only and one-coin episodes both present
    assert all(e.observations.shape[1] == 6 for e in episodes)


def test_ogbench_env_steps_through_tasks():
    env = ogbench_maze.make_pointmaze_giant_env()
    goals = []
    for seed in range(5):
        obs, _ = env.reset(seed=seed)
        goals.append(tuple(np.round(obs[2:], 1)))
    assert len(set(goals)) == 5                         # seeds 0..4 start at the 5 different tasks
    obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
    assert obs.shape == (4,) and reward == 0.0 and info["success"] is False


def test_ogbench_generator_writes_small_dataset(minari_dir):
    import minari

    ogbench_maze.generate_pointmaze_giant(minari_id="mage/pointmaze-giant-test-v1", num_steps=300, seed=0,
                                          episode_steps=200, progress=False)
    episodes = list(minari.load_dataset("mage/pointmaze-giant-test-v1").iterate_episodes())
    assert [len(e.actions) for e in episodes] == [200, 100]
    for e in episodes:
        np.testing.assert_allclose(e.observations[:, 2:], e.infos["goal"])
        assert np.abs(e.actions).max() <= 1.0
        # the oracle moves: the noisy expert covers ground, ~up to 1 unit per 10 steps
        assert np.linalg.norm(e.observations[-1, :2] - e.observations[0, :2]) > 1.0


def test_reference_scores_cli_rejects_too_few_episodes(capsys):
    from suites import reference_scores

    assert reference_scores.main(["--episodes", "1"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_goal_given_maze2d_tells_the_agent_the_eval_goal(smoke_minari_dir):
    """maze2d-*-goal (issue 15, lead 7): the data carry the controller's goal in obs[4:6] with rewards
    relabelled to it; the evaluation env appends D4RL's fixed goal, the one Diffuser inpaints on maze2d."""
    from suites import envs, registry

    data = registry.load_offline_dataset("maze2d-umaze-goal", profile="smoke")
    plain = registry.load_offline_dataset("maze2d-umaze", profile="smoke")
    assert data.obs_dim == 6 and data.num_transitions == plain.num_transitions
    np.testing.assert_array_equal(data.observations[:, :4], plain.observations)
    assert not np.array_equal(data.rewards, plain.rewards)
    spec = registry.dataset_spec("maze2d-umaze-goal")
    env = envs.make_env(spec, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (6,)
    np.testing.assert_allclose(obs[4:6], registry.dataset_spec("maze2d-umaze").hparams["diffuser"]["goal_xy"])
    assert spec.hparams["diffuser"]["goal_obs_slice"] == [4, 6]
