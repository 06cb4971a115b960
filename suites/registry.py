"""Suite registry: every ``suites/*.yaml`` (package data) as one ``DatasetSpec`` per dataset key.

Three kinds of dataset:
- downloadable: ``minari_id`` (a string, or a list of ids concatenated in order, as D4RL built
  its medium-expert data); loaded from the local Minari folder, fetched only with ``download=True``;
- generated: ``generator`` (entry, recipe_version, steps per profile, kwargs); made here on first
  use under ``mage/<key>-<profile>-v<recipe_version>``;
- derived: ``derived_from`` (another key) + ``transform`` (OfflineDataset -> OfflineDataset).
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import importlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from suites import minari_io
from suites.dataset import OfflineDataset
from suites.errors import CorruptDatasetError, MissingDatasetError, UnknownDatasetError

SUITES_DIR = Path(__file__).parent
SUCCESS_RULES = ("info", "reward_positive", "none")
GENERATION_SEED = 0   # the data of a generated dataset depend only on its recipe version and profile


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    key: str                          # short unique name, e.g. "pen-human"
    suite: str                        # e.g. "adroit"
    env: dict                         # {id: ..., kwargs: {...}} or {entry: "module:function", kwargs: {...}}
    horizon: int                      # evaluation episode length in env steps
    ref_min: float                    # D4RL normalisation: 100 * (R - ref_min) / (ref_max - ref_min)
    ref_max: float
    gamma: float                      # discount of returns-to-go
    eval_episodes: int                # per seed, as the paper
    success: str                      # info | reward_positive | none
    hparams: dict                     # method -> hyperparameters (suite-level merged with dataset-level)
    minari_id: str | tuple | None = None   # downloadable: Minari id (tuple: ids concatenated)
    generator: dict | None = None     # generated: entry, recipe_version, steps{profile}, kwargs
    derived_from: str | None = None   # derived: base dataset key
    transform: dict | None = None     # derived: {entry: "module:function"}
    ref_published: dict | None = None   # {min, max, source}: the published reference scores where ref_min/max are
                                        # re-measured here (mazes); tables compare with the paper on these
    generated: bool = False           # True when the data are made here (generated, or derived from such)
    continuing: bool = False          # episodes are consecutive cuts of one stream (OfflineDataset.continuing)
    description: str = ""

    def minari_ids(self, profile: str = "paper") -> tuple[str, ...]:
        """The Minari id(s) holding this dataset's data (a derived dataset: its base's)."""
        if self.derived_from is not None:
            return dataset_spec(self.derived_from).minari_ids(profile)
        if self.generator is not None:
            return (generated_minari_id(self, profile),)
        return tuple(self.minari_id) if isinstance(self.minari_id, tuple) else (self.minari_id,)


def generated_minari_id(spec: DatasetSpec, profile: str) -> str:
    """``mage/<key>-<profile>-v<recipe_version>``: a recipe change or another profile gets its own files."""
    return f"mage/{spec.key}-{profile}-v{int(spec.generator['recipe_version'])}"


# ---------------------------------------------------------------------------- YAML
@functools.lru_cache(maxsize=1)
def _all_specs() -> dict[str, DatasetSpec]:
    raw: dict[str, tuple[dict, dict]] = {}
    for path in sorted(SUITES_DIR.glob("*.yaml")):
        suite = yaml.safe_load(path.read_text())
        if not isinstance(suite, dict) or "datasets" not in suite:
            continue
        for key, entry in suite["datasets"].items():
            if key in raw:
                raise ValueError(f"dataset key {key!r} is defined twice ({path.name} and suite {raw[key][0]['suite']})")
            raw[key] = (suite, entry or {})
    specs = {key: _build_spec(key, suite, entry, path_hint=suite.get("suite")) for key, (suite, entry) in raw.items()}
    for key, spec in specs.items():
        if spec.derived_from is not None:
            if spec.derived_from not in specs:
                raise ValueError(f"dataset {key}: derived_from {spec.derived_from!r} is not a dataset key")
            base = specs[spec.derived_from]
            specs[key] = dataclasses.replace(spec, generated=base.generated, continuing=spec.continuing or base.continuing)
    return specs


def _build_spec(key: str, suite: dict, entry: dict, path_hint: str) -> DatasetSpec:
    def pick(name: str, default: Any = None) -> Any:
        return entry.get(name, suite.get(name, default))

    hparams = {method: dict(values or {}) for method, values in (suite.get("hparams") or {}).items()}
    for method, values in (entry.get("hparams") or {}).items():
        hparams[method] = {**hparams.get(method, {}), **(values or {})}
    minari_id = entry.get("minari_id")
    if isinstance(minari_id, list):
        minari_id = tuple(minari_id)
    sources = [minari_id is not None, entry.get("generator") is not None, entry.get("derived_from") is not None]
    if sum(sources) != 1:
        raise ValueError(f"dataset {key} ({path_hint}.yaml) needs exactly one of minari_id, generator, derived_from")
    success = pick("success", "none")
    if success not in SUCCESS_RULES:
        raise ValueError(f"dataset {key}: success must be one of {SUCCESS_RULES}, not {success!r}")
    missing = [name for name in ("env", "horizon", "ref_min", "ref_max", "gamma", "eval_episodes") if pick(name) is None]
    if missing:
        raise ValueError(f"dataset {key} ({path_hint}.yaml) lacks {', '.join(missing)}")
    return DatasetSpec(
        key=key, suite=suite["suite"], env=dict(pick("env")), horizon=int(pick("horizon")),
        ref_min=float(pick("ref_min")), ref_max=float(pick("ref_max")), gamma=float(pick("gamma")),
        eval_episodes=int(pick("eval_episodes")), success=success, hparams=hparams, minari_id=minari_id,
        generator=entry.get("generator"), derived_from=entry.get("derived_from"), transform=entry.get("transform"),
        ref_published=entry.get("ref_published"), generated=entry.get("generator") is not None,
        continuing=bool(pick("continuing", False)),
        description=str(entry.get("description", suite.get("description", ""))).strip())


def all_dataset_keys() -> list[str]:
    """Every dataset key of every suite, in suite-file then YAML order."""
    return list(_all_specs())


def dataset_spec(key: str) -> DatasetSpec:
    """The spec of ``key``; UnknownDatasetError (a ValueError) with close matches otherwise."""
    specs = _all_specs()
    if key not in specs:
        close = difflib.get_close_matches(key, list(specs), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(specs)}"
        raise UnknownDatasetError(f"unknown dataset {key!r}{hint}")
    return specs[key]


def load_entry(entry: str):
    """``"module:function"`` -> the function."""
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)


# ---------------------------------------------------------------------------- data
def missing_data(key: str, profile: str = "paper") -> str | None:
    """None when the data of ``key`` are local or made here, else the one-line message to fetch them."""
    spec = dataset_spec(key)
    if spec.derived_from is not None:
        return missing_data(spec.derived_from, profile)
    if spec.generated:
        return None
    for minari_id in spec.minari_ids(profile):
        if not minari_io.is_local(minari_id):
            return minari_io.missing_message(minari_id)
    return None


def load_offline_dataset(key: str, profile: str = "paper", download: bool = False,
                         progress: bool = True) -> OfflineDataset:
    """The OfflineDataset of ``key`` (RTG with the suite's γ), generated or downloaded as needed;
    ``progress``: the generator's progress bar (off under --quiet).

    Raises MissingDatasetError (absent and ``download`` false; no network call),
    CorruptDatasetError (a file that cannot be read; the message says how to regenerate or
    download it again), UnknownDatasetError (bad key).
    """
    spec = dataset_spec(key)
    if spec.derived_from is not None:
        base = load_offline_dataset(spec.derived_from, profile, download, progress)
        base = _with_gamma(base, spec.gamma)
        with _how_to_fix(dataset_spec(spec.derived_from), base.name):   # the transform reads the base's files again
            derived = _with_gamma(load_entry(spec.transform["entry"])(base), spec.gamma)
        return dataclasses.replace(derived, continuing=spec.continuing)
    if spec.generator is not None:
        _generate_if_absent(spec, profile, progress)
    parts = []
    for minari_id in spec.minari_ids(profile):
        if not minari_io.is_local(minari_id):
            if not download:
                raise MissingDatasetError(minari_io.missing_message(minari_id))
            minari_io.download(minari_id)
        with _how_to_fix(spec, minari_id):
            parts.append(minari_io.read_dataset(minari_id, spec.gamma))
    data = parts[0] if len(parts) == 1 else _concatenate(parts, spec.gamma)
    return dataclasses.replace(data, continuing=spec.continuing) if spec.continuing else data


@contextlib.contextmanager
def _how_to_fix(spec: DatasetSpec, minari_id: str):
    """A CorruptDatasetError raised inside gets what to do about it: a generated dataset is made again
    once its folder is removed (the recipe and seed are fixed, so it comes back the same); a downloaded
    one is fetched again over the local copy."""
    try:
        yield
    except CorruptDatasetError as error:
        if spec.generator is not None:
            fix = (f"it is generated here: remove it (rm -r '{minari_io.dataset_dir(minari_id)}') and run the "
                   f"command again to regenerate it")
        else:
            fix = f"download it again: minari download --force {minari_id}"
        raise CorruptDatasetError(f"{error}; {fix}") from error


def _generate_if_absent(spec: DatasetSpec, profile: str, progress: bool) -> None:
    minari_id = generated_minari_id(spec, profile)
    if minari_io.is_local(minari_id):
        return
    steps = spec.generator["steps"]
    if profile not in steps:
        raise ValueError(f"dataset {spec.key}: no generator size for profile {profile!r} (has {', '.join(steps)})")
    generate = load_entry(spec.generator["entry"])
    try:
        generate(minari_id=minari_id, num_steps=int(steps[profile]), seed=GENERATION_SEED, progress=progress,
                 **(spec.generator.get("kwargs") or {}))
    except (ValueError, OSError):
        if not minari_io.is_local(minari_id):   # another process may have written it meanwhile
            raise


def _with_gamma(data: OfflineDataset, gamma: float) -> OfflineDataset:
    """``data`` with returns-to-go for ``gamma`` (recomputed only when γ differs)."""
    if data.gamma == gamma:
        return data
    return dataclasses.replace(data, gamma=gamma, returns_to_go=None)


def _concatenate(parts: list[OfflineDataset], gamma: float) -> OfflineDataset:
    """Episodes of ``parts`` one after another (D4RL's medium-expert = medium + expert)."""
    dims = {(p.obs_dim, p.act_dim) for p in parts}
    if len(dims) != 1:
        raise CorruptDatasetError(f"cannot concatenate {', '.join(p.name for p in parts)}: shapes {sorted(dims)} differ")
    offsets = np.cumsum([0] + [p.num_transitions for p in parts[:-1]])
    starts = np.concatenate([parts[0].episode_starts[:1]] + [p.episode_starts[1:] + o for p, o in zip(parts, offsets)])
    return OfflineDataset(
        name="+".join(p.name for p in parts),
        observations=np.concatenate([p.observations for p in parts]), actions=np.concatenate([p.actions for p in parts]),
        rewards=np.concatenate([p.rewards for p in parts]), terminals=np.concatenate([p.terminals for p in parts]),
        timeouts=np.concatenate([p.timeouts for p in parts]), episode_starts=starts.astype(np.int64), gamma=gamma,
        returns_to_go=np.concatenate([p.returns_to_go for p in parts]),
        action_low=parts[0].action_low, action_high=parts[0].action_high)


def normalized_score(key: str, returns) -> np.ndarray:
    """D4RL normalisation, float64 array like ``returns``: 100 * (R - ref_min) / (ref_max - ref_min)."""
    spec = dataset_spec(key)
    return 100.0 * (np.asarray(returns, np.float64) - spec.ref_min) / (spec.ref_max - spec.ref_min)


def published_score(key: str, returns) -> np.ndarray | None:
    """The same normalisation with the suite's ``ref_published`` {min, max} (D4RL's published reference
    scores, which the paper's maze numbers use), float64 like ``returns``; None when the suite has
    no published reference apart from its own (its scores are then on the paper's scale already)."""
    published = dataset_spec(key).ref_published
    if not published:
        return None
    low, high = float(published["min"]), float(published["max"])
    return 100.0 * (np.asarray(returns, np.float64) - low) / (high - low)


def published_from_normalized(key: str, score: float) -> float | None:
    """A score normalised with the suite's ``ref_min``/``ref_max`` (e.g. a periodic evaluation's mean)
    re-expressed on its ``ref_published`` scale (the normalisation is affine in the return, so means
    map exactly); None when the suite has no published reference of its own."""
    spec = dataset_spec(key)
    if not spec.ref_published:
        return None
    mean_return = spec.ref_min + float(score) / 100.0 * (spec.ref_max - spec.ref_min)
    return float(published_score(key, [mean_return])[0])
