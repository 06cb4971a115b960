"""Minari datasets on disk: locate, write atomically, and read into one ``OfflineDataset``.

Observation flattening (shared with ``suites.envs``, so a policy sees the same vector in the data
and in the environment): a dict observation becomes the concatenation of ``observation``, then
``achieved_goal``, then ``desired_goal``, then any other keys in sorted order; a nested dict
(Kitchen's per-task goals) is flattened the same way with its keys sorted. Every leaf is cast to
float32 and reshaped to [..., -1].

Missing data are detected by looking at the local datasets folder ourselves: ``minari.load_dataset``
with ``download=True`` would try the network (~23 s of retries when there is none).
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from suites.dataset import OfflineDataset
from suites.errors import CorruptDatasetError, MissingDatasetError

FIRST_KEYS = ("observation", "achieved_goal", "desired_goal")
WRITE_BATCH_EPISODES = 64   # episodes handed to Minari at once; bounds memory for multi-million-step data
STAGING_DIR = ".staging"    # under the datasets root; half-written datasets live here until renamed


def datasets_root() -> Path:
    """The Minari datasets folder (``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``), not created."""
    env_path = os.environ.get("MINARI_DATASETS_PATH")
    return Path(env_path) if env_path else Path.home() / ".minari" / "datasets"


def dataset_dir(minari_id: str) -> Path:
    """Folder of ``minari_id`` in the local datasets folder (may not exist)."""
    return datasets_root() / minari_id


def is_local(minari_id: str) -> bool:
    """True when the dataset's ``data`` folder exists locally (no network, no Minari call)."""
    return (dataset_dir(minari_id) / "data").is_dir()


def missing_message(minari_id: str) -> str:
    return (f"dataset {minari_id} is not downloaded: run `minari download {minari_id}` "
            f"(or pass --download)")


# ---------------------------------------------------------------------------- observation layout
def _ordered_keys(obs: dict) -> list:
    return [k for k in FIRST_KEYS if k in obs] + sorted(k for k in obs if k not in FIRST_KEYS)


def flatten_observation(obs, batch_dims: int = 0) -> np.ndarray:
    """Dict (possibly nested) or array observation -> float32 array [*batch, obs_dim].

    ``batch_dims`` leading axes are kept (1 for a Minari episode's [T+1, ...] arrays, 0 for one
    environment observation).
    """
    if isinstance(obs, dict):
        parts = [flatten_observation(obs[k], batch_dims) for k in _ordered_keys(obs)]
        return np.concatenate(parts, axis=-1)
    array = np.asarray(obs, np.float32)
    return array.reshape(array.shape[:batch_dims] + (-1,))


def leaf_paths(space, prefix: tuple = ()) -> list[tuple]:
    """Key paths of a (nested) Dict space's leaves in flattening order ([()] for a Box)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return [path for k in _ordered_keys(dict(space.spaces)) for path in leaf_paths(space[k], prefix + (k,))]
    return [prefix]


def flat_dim(space) -> int:
    """Length of the flattened observation of a gymnasium space (Box or nested Dict)."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return sum(flat_dim(space[k]) for k in _ordered_keys(dict(space.spaces)))
    return int(np.prod(space.shape))


# ---------------------------------------------------------------------------- writing
def write_episodes(minari_id: str, episodes: Iterable[dict], observation_space, action_space, *,
                   env_spec=None, description: str = "", metadata: dict | None = None) -> Path:
    """Write ``episodes`` as the Minari dataset ``minari_id``; returns its folder.

    Each episode dict: ``observations`` [T+1, obs_dim] float32 (the last one after the final step;
    or a dict of such arrays matching a Dict ``observation_space``, as Minari's AntMaze/Kitchen data),
    ``actions`` [T, act_dim], ``rewards`` [T], ``terminations`` [T] bool, ``truncations`` [T] bool,
    optional ``infos`` dict of [T+1, ...] arrays. Atomic: the dataset is built under a staging
    folder of the datasets root and renamed into place, so a half-written dataset is never
    visible under ``minari_id``. ``metadata`` is stored as JSON in the Minari metadata key
    ``mage_metadata``. Raises ValueError if ``minari_id`` already exists. If another process
    renames the same dataset into place while this one builds it (two runs of a plan generating
    one dataset at once), the first one stays and this copy is dropped: the harness's datasets
    are made by a seeded recipe, so both are the same data.
    """
    final_dir = dataset_dir(minari_id)
    if final_dir.exists():
        raise ValueError(f"Minari dataset {minari_id} already exists at {final_dir}")
    root = datasets_root()
    staging_root = root / STAGING_DIR / uuid.uuid4().hex
    staging_root.mkdir(parents=True)
    try:
        _create(minari_id, staging_root, episodes, observation_space, action_space, env_spec, description, metadata)
        _ensure_namespaces(minari_id)
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging_root / minari_id, final_dir)
        except OSError:
            if not final_dir.is_dir():   # not the other writer's dataset: a real failure
                raise
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
        try:
            (root / STAGING_DIR).rmdir()   # only when no other writer is staging
        except OSError:
            pass
    return final_dir


@contextlib.contextmanager
def _datasets_path(path: Path):
    """Temporarily point MINARI_DATASETS_PATH (where Minari creates a dataset) at ``path``."""
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def _create(minari_id, staging_root, episodes, observation_space, action_space, env_spec, description,
            metadata) -> None:
    """Build the dataset under ``staging_root``; the episode stream runs with the real datasets path."""
    import minari
    from minari.data_collector import EpisodeBuffer

    batches = _batches(episodes, EpisodeBuffer)
    first = next(batches, None)
    if not first:
        raise ValueError(f"no episodes to write for {minari_id}")
    with warnings.catch_warnings(), _datasets_path(staging_root):
        warnings.simplefilter("ignore", UserWarning)   # Minari warns about author/permalink fields we leave empty
        dataset = minari.create_dataset_from_buffers(
            dataset_id=minari_id, buffer=first, env=env_spec, observation_space=observation_space,
            action_space=action_space, description=description or None, algorithm_name="mage-harness",
            author="mage-harness", author_email="none", code_permalink="suites/minari_io.py")
    for batch in batches:
        dataset.storage.update_episodes(batch)
    if metadata:
        dataset.storage.update_metadata({"mage_metadata": json.dumps(metadata)})


def _batches(episodes: Iterable[dict], buffer_cls) -> Iterator[list]:
    batch = []
    for episode in episodes:
        batch.append(buffer_cls(
            observations=_as_arrays(episode["observations"]),
            actions=np.asarray(episode["actions"], np.float32),
            rewards=np.asarray(episode["rewards"], np.float64).tolist(),
            terminations=np.asarray(episode["terminations"], bool).tolist(),
            truncations=np.asarray(episode["truncations"], bool).tolist(),
            infos={k: np.asarray(v) for k, v in episode["infos"].items()} if episode.get("infos") else None))
        if len(batch) == WRITE_BATCH_EPISODES:
            yield batch
            batch = []
    if batch:
        yield batch


def _as_arrays(observations):
    """[T+1, ...] array, or a (nested) dict of them as Minari's dict observation spaces store."""
    if isinstance(observations, dict):
        return {k: _as_arrays(v) for k, v in observations.items()}
    array = np.asarray(observations)
    return array.astype(np.float32) if array.dtype == np.float64 else array


def _ensure_namespaces(minari_id: str) -> None:
    """Create Minari's namespace metadata for ``minari_id``'s namespace in the real datasets root."""
    from minari.namespace import create_namespace, list_local_namespaces
    from minari.storage.datasets_root_dir import get_dataset_path
    from minari.utils import parse_dataset_id

    get_dataset_path()
    namespace = parse_dataset_id(minari_id)[0]
    if namespace is not None and namespace not in list_local_namespaces():
        try:
            create_namespace(namespace)
        except ValueError:   # created meanwhile by another writer
            pass


# ---------------------------------------------------------------------------- reading
def read_dataset(minari_id: str, gamma: float) -> OfflineDataset:
    """Load the local Minari dataset ``minari_id`` into one OfflineDataset (RTG with ``gamma``).

    Raises MissingDatasetError (no local copy; no network call) or CorruptDatasetError naming
    the file that cannot be read.
    """
    if not is_local(minari_id):
        raise MissingDatasetError(missing_message(minari_id))
    source = open_local(minari_id)
    observations, actions, rewards, terminals, timeouts, lengths = [], [], [], [], [], []
    try:
        for episode in source.iterate_episodes():
            obs = flatten_observation(episode.observations, batch_dims=1)
            steps = len(episode.actions)
            observations.append(obs[:steps])
            actions.append(np.asarray(episode.actions, np.float32).reshape(steps, -1))
            rewards.append(np.asarray(episode.rewards, np.float32))
            terminals.append(np.asarray(episode.terminations, bool))
            timeouts.append(np.asarray(episode.truncations, bool))
            lengths.append(steps)
    except (OSError, KeyError, ValueError) as error:
        raise CorruptDatasetError(f"cannot read {_data_file(minari_id)}: {error}") from error
    if not lengths:
        raise CorruptDatasetError(f"dataset {minari_id} has no episodes ({_data_file(minari_id)})")
    space = source.action_space
    low = np.broadcast_to(np.asarray(getattr(space, "low", -1.0), np.float32), (actions[0].shape[1],))
    high = np.broadcast_to(np.asarray(getattr(space, "high", 1.0), np.float32), (actions[0].shape[1],))
    return OfflineDataset(
        name=minari_id, observations=np.concatenate(observations), actions=np.concatenate(actions),
        rewards=np.concatenate(rewards), terminals=np.concatenate(terminals), timeouts=np.concatenate(timeouts),
        episode_starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), gamma=float(gamma),
        action_low=low.copy(), action_high=high.copy())


def open_local(minari_id: str):
    """``minari.load_dataset`` of a local dataset, its failures turned into CorruptDatasetError."""
    import minari

    try:
        return minari.load_dataset(minari_id)
    except FileNotFoundError as error:
        raise MissingDatasetError(missing_message(minari_id)) from error
    except Exception as error:  # noqa: BLE001 - h5py/json/Minari raise many types for a bad file
        raise CorruptDatasetError(f"cannot read {_data_file(minari_id)}: {type(error).__name__}: {error}") from error


def _data_file(minari_id: str) -> Path:
    """The main data file of a local dataset (HDF5 if present, else the data folder)."""
    data = dataset_dir(minari_id) / "data"
    hdf5 = data / "main_data.hdf5"
    return hdf5 if hdf5.exists() else data


def download(minari_id: str) -> None:
    """Fetch ``minari_id`` with Minari's download API (needs the network and ``minari[hf]``)."""
    import minari

    try:
        minari.download_dataset(minari_id)
    except Exception as error:  # noqa: BLE001 - network/HF errors: one line for the user
        raise MissingDatasetError(f"could not download dataset {minari_id}: {type(error).__name__}: "
                                  f"{' '.join(str(error).split())[:200]}") from error
