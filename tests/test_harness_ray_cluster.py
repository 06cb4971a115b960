"""A real Ray cluster on loopback: the test starts a head node, runs a smoke plan on it with
--address, and stops the head (only the processes it started: the head's own process group)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from tests.harness_support import fit_events, harness_env, reproduce, results, write_plans


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def ray_head():
    """``ray start --head`` on 127.0.0.1 in its own session; yields its address."""
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="rh", dir="/tmp")   # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}      # a test cluster: no token (platform notes)
    head = subprocess.Popen(
        ["ray", "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp_dir}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        # `ray stop` would stop every Ray instance on the machine; SIGKILL to the head's process group
        # ends exactly the processes this test started, at once (SIGTERM drains for up to 30 s).
        os.killpg(head.pid, signal.SIGKILL)
        head.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_smoke_plan_on_a_loopback_cluster(ray_head, tmp_path):
    env = {**harness_env(write_plans(tmp_path / "plans"), tmp_path / "fit.log"), "RAY_AUTH_MODE": "disabled"}
    storage = tmp_path / "shared"
    run = reproduce(["--table", "902", "--profile", "smoke", "--address", ray_head, "--storage", str(storage),
                     "--cpus-per-run", "0.5", "--results-dir", str(tmp_path / "results")], env)
    # table902 has one NaN column: the cluster run reports it failed (exit 1), the other run is done
    assert run.returncode == 1, run.stderr[-2000:]
    finished = results(storage / "runs")
    assert len(finished) == 1 and next(iter(finished.values()))["config"]["tag"] == "ok"
    assert len(list((storage / "runs").glob("*/failure.json"))) == 1
    assert (tmp_path / "results" / "table902.md").exists()
    assert list(storage.glob("sweep-*")), "Tune's experiment state is not under --storage"
    assert fit_events(tmp_path / "fit.log")["end", "ok", "0"] == 1
