"""Shared test setup: the whole test session uses a private, empty Minari datasets folder."""
import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def minari_datasets_path(tmp_path_factory):
    """MINARI_DATASETS_PATH -> a session tmp dir, so tests never read or write ~/.minari."""
    path = tmp_path_factory.mktemp("minari_datasets")
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("MINARI_DATASETS_PATH", None)
    else:
        os.environ["MINARI_DATASETS_PATH"] = previous
