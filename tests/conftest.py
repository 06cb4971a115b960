"""Shared test setup: a private, empty Minari datasets folder for the whole session, and a
one-torch-thread fixture for modules that train tiny models."""
import os

import pytest
import torch


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread; on a shared, busy 2-core machine two threads spin.
    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
