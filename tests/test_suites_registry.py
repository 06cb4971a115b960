"""Suite registry, Minari I/O and data errors, on small Minari datasets written in a tmp folder."""
import shutil
import socket

import gymnasium as gym
import numpy as np
import pytest

from suites import minari_io, registry
from suites.errors import CorruptDatasetError, DataError, MissingDatasetError

OBS_SPACE = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT_SPACE = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

PAPER_KEYS = ([f"{t}-{q}" for t in ("pen", "door", "hammer", "relocate") for q in ("human", "cloned", "expert")]
              + [f"kitchen-{q}" for q in ("partial", "mixed", "complete")]
              + [f"antmaze-{m}" for m in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")]
              + [f"{e}-{q}" for e in ("halfcheetah", "walker2d", "ant") for q in ("medium", "medium-replay", "medium-expert")])


def episode(rewards, terminated=False, obs_dim=3, act_dim=2, offset=0.0):
    steps = len(rewards)
    return {"observations": offset + np.arange((steps + 1) * obs_dim, dtype=np.float32).reshape(steps + 1, obs_dim),
            "actions": np.full((steps, act_dim), 0.5, np.float32), "rewards": np.asarray(rewards, np.float32),
            "terminations": np.array([False] * (steps - 1) + [terminated]),
            "truncations": np.array([False] * (steps - 1) + [not terminated])}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test (fakes a dead network)."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def fresh_root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    return tmp_path / "datasets"


def test_every_paper_dataset_has_a_complete_spec():
    keys = registry.all_dataset_keys()
    assert set(PAPER_KEYS) <= set(keys) and len(keys) == len(set(keys))
    for key in PAPER_KEYS:
        spec = registry.dataset_spec(key)
        assert spec.ref_max > spec.ref_min and spec.horizon > 0 and 0 < spec.gamma <= 1
        assert not spec.generated and spec.minari_id is not None
        assert {"codebook_size", "num_blocks", "num_heads", "embed_dim", "horizon", "lr", "batch_size",
                "dropout"} <= set(spec.hparams["mage"])
    pen = registry.dataset_spec("pen-human")
    assert pen.minari_ids() == ("D4RL/pen/human-v2",) and pen.horizon == 100 and pen.eval_episodes == 20
    assert (pen.ref_min, pen.ref_max) == (96.262799, 3076.8331) and pen.hparams["mage"]["codebook_size"] == 512
    assert registry.dataset_spec("door-expert").horizon == 200
    antmaze = registry.dataset_spec("antmaze-large-diverse")
    assert antmaze.minari_ids() == ("D4RL/antmaze/large-diverse-v1",) and antmaze.gamma == 0.998
    assert antmaze.success == "reward_positive" and antmaze.eval_episodes == 100
    assert registry.dataset_spec("kitchen-mixed").hparams["mage"]["codebook_size"] == 2048
    assert registry.dataset_spec("halfcheetah-medium-expert").minari_ids() == (
        "mujoco/halfcheetah/medium-v0", "mujoco/halfcheetah/expert-v0")


def test_unknown_key_is_a_value_error_with_close_matches():
    with pytest.raises(ValueError, match="did you mean pen-human") as caught:
        registry.dataset_spec("pen-humn")
    assert isinstance(caught.value, DataError) and "\n" not in str(caught.value)


def test_missing_dataset_fails_without_network(fresh_root, no_network):
    message = "dataset D4RL/pen/human-v2 is not downloaded: run `minari download D4RL/pen/human-v2` (or pass --download)"
    assert registry.missing_data("pen-human", "paper") == message
    with pytest.raises(MissingDatasetError) as caught:
        registry.load_offline_dataset("pen-human")
    assert str(caught.value) == message


def test_write_read_roundtrip_with_hand_computed_returns_to_go(fresh_root):
    path = minari_io.write_episodes("D4RL/pen/human-v2", [episode([1.0, 2.0, 3.0]), episode([5.0, 0.0], terminated=True)],
                                    OBS_SPACE, ACT_SPACE, metadata={"recipe": 1})
    assert path == fresh_root / "D4RL/pen/human-v2" and (path / "data" / "main_data.hdf5").is_file()
    assert not (fresh_root / minari_io.STAGING_DIR).exists()
    assert registry.missing_data("pen-human", "paper") is None
    data = registry.load_offline_dataset("pen-human")
    assert data.name == "D4RL/pen/human-v2" and data.gamma == 0.99
    np.testing.assert_array_equal(data.episode_starts, [0, 3, 5])
    np.testing.assert_array_equal(data.observations[:3], np.arange(9, dtype=np.float32).reshape(3, 3))  # last obs dropped
    assert data.observations.shape == (5, 3) and data.actions.shape == (5, 2)
    np.testing.assert_array_equal(data.terminals, [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(data.timeouts, [0, 0, 1, 0, 0])
    g = 0.99
    np.testing.assert_allclose(data.returns_to_go, [1 + g * 2 + g * g * 3, 2 + g * 3, 3, 5, 0], rtol=1e-6)
    np.testing.assert_allclose(registry.normalized_score("pen-human", [96.262799, 3076.8331]), [0.0, 100.0])


def test_a_dataset_written_by_two_processes_at_once_keeps_the_first(fresh_root, monkeypatch):
    """Two local runs of a plan may generate one dataset at the same time: the one renamed into place
    second must neither fail nor replace the first (os.replace cannot rename onto a full folder)."""
    real_create = minari_io._create

    def other_writer_finishes_first(minari_id, *args):
        monkeypatch.setattr(minari_io, "_create", real_create)
        minari_io.write_episodes(minari_id, [episode([7.0, 7.0])], OBS_SPACE, ACT_SPACE)   # the other process
        real_create(minari_id, *args)

    monkeypatch.setattr(minari_io, "_create", other_writer_finishes_first)
    path = minari_io.write_episodes("D4RL/pen/human-v2", [episode([1.0, 2.0, 3.0])], OBS_SPACE, ACT_SPACE)
    assert path == fresh_root / "D4RL/pen/human-v2" and not (fresh_root / minari_io.STAGING_DIR).exists()
    np.testing.assert_array_equal(registry.load_offline_dataset("pen-human").rewards, [7.0, 7.0])


def test_medium_expert_concatenates_episodes_and_restarts_rtg(fresh_root):
    minari_io.write_episodes("mujoco/halfcheetah/medium-v0", [episode([1.0, 1.0])], OBS_SPACE, ACT_SPACE)
    minari_io.write_episodes("mujoco/halfcheetah/expert-v0", [episode([2.0, 2.0, 2.0], offset=100.0)], OBS_SPACE, ACT_SPACE)
    assert registry.missing_data("halfcheetah-medium-expert", "paper") is None
    data = registry.load_offline_dataset("halfcheetah-medium-expert")
    np.testing.assert_array_equal(data.episode_starts, [0, 2, 5])
    assert data.observations[2, 0] == 100.0
    np.testing.assert_allclose(data.returns_to_go, [1.99, 1.0, 2 + 0.99 * 2 + 0.99 ** 2 * 2, 2 + 0.99 * 2, 2.0], rtol=1e-6)


def test_missing_second_part_is_reported(fresh_root):
    minari_io.write_episodes("mujoco/ant/medium-v0", [episode([1.0])], OBS_SPACE, ACT_SPACE)
    assert "mujoco/ant/expert-v0" in registry.missing_data("ant-medium-expert", "paper")


def test_write_is_atomic_when_the_episode_stream_fails(fresh_root):
    def broken():
        yield episode([1.0])
        raise RuntimeError("generator died")
    with pytest.raises(RuntimeError):
        minari_io.write_episodes("D4RL/door/human-v2", broken(), OBS_SPACE, ACT_SPACE)
    assert not (fresh_root / "D4RL/door/human-v2").exists() and not (fresh_root / minari_io.STAGING_DIR).exists()
    minari_io.write_episodes("D4RL/door/human-v2", [episode([1.0])], OBS_SPACE, ACT_SPACE)
    with pytest.raises(ValueError, match="already exists"):
        minari_io.write_episodes("D4RL/door/human-v2", [episode([1.0])], OBS_SPACE, ACT_SPACE)


def test_truncated_hdf5_is_a_corrupt_dataset_naming_the_file(fresh_root):
    path = minari_io.write_episodes("D4RL/hammer/human-v2", [episode([1.0] * 50)], OBS_SPACE, ACT_SPACE)
    data_file = path / "data" / "main_data.hdf5"
    data_file.write_bytes(data_file.read_bytes()[:300])
    with pytest.raises(CorruptDatasetError) as caught:
        registry.load_offline_dataset("hammer-human")
    assert str(data_file) in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).endswith("download it again: minari download --force D4RL/hammer/human-v2")


def test_a_corrupt_generated_dataset_says_how_to_regenerate_it_and_that_works(fresh_root):
    minari_id = registry.generated_minari_id(registry.dataset_spec("maze2d-umaze"), "smoke")
    path = minari_io.write_episodes(minari_id, [episode([1.0] * 50, obs_dim=4)],
                                    gym.spaces.Box(-np.inf, np.inf, (4,), np.float32), ACT_SPACE)
    data_file = path / "data" / "main_data.hdf5"
    data_file.write_bytes(data_file.read_bytes()[:300])
    for key in ("maze2d-umaze", "multi2d-umaze"):   # multi2d-umaze is derived from it
        with pytest.raises(CorruptDatasetError) as caught:
            registry.load_offline_dataset(key, "smoke")
        message = str(caught.value)
        assert str(data_file) in message and "\n" not in message
        assert message.endswith(f"it is generated here: remove it (rm -r '{path}') and run the command again to regenerate it")
    shutil.rmtree(path)   # what the message says to do
    data = registry.load_offline_dataset("maze2d-umaze", "smoke", progress=False)
    assert data.num_transitions == registry.dataset_spec("maze2d-umaze").generator["steps"]["smoke"]


def test_bad_metadata_is_a_corrupt_dataset(fresh_root):
    path = minari_io.write_episodes("D4RL/relocate/human-v2", [episode([1.0])], OBS_SPACE, ACT_SPACE)
    (path / "data" / "metadata.json").write_text("{not json")
    with pytest.raises(CorruptDatasetError, match="relocate/human-v2"):
        registry.load_offline_dataset("relocate-human")


def test_dict_observations_flatten_in_documented_order():
    obs = {"desired_goal": np.array([[7.0]]), "observation": np.array([[1.0, 2.0]]),
           "achieved_goal": {"b": np.array([[5.0]]), "a": np.array([[3.0, 4.0]])}, "extra": np.array([[8.0]])}
    np.testing.assert_array_equal(minari_io.flatten_observation(obs, batch_dims=1), [[1, 2, 3, 4, 5, 7, 8]])
