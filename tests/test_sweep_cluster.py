"""Where a sweep's Ray runs: locally on loopback only, or on a cluster of several nodes.

Each test starts and stops its own Ray processes with a Ray temp folder of its own (so that no
cluster file of the machine's is read or written), on this machine's loopback address only.
The two-node cluster is Ray's own ``ray.cluster_utils.Cluster`` (``tests/ray_cluster.py``),
started with Ray's single-machine switch and a token, as the README's cluster section says.
"""

import contextlib
import csv
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray.tune")
psutil = pytest.importorskip("psutil")

from test_sweep import data_dir, read_csv, sweep_file  # noqa: E402, F401  (data_dir: the fixture)
from sda.sweep_config import read_sweep  # noqa: E402
from sda.sweep_report import write_results, write_summary  # noqa: E402

CLUSTER_SCRIPT = Path(__file__).with_name("ray_cluster.py")

pytestmark = pytest.mark.cluster


@pytest.fixture
def ray_tmp():
    """A Ray temp folder of the test's own; short, since Ray's socket paths must fit in 107 bytes."""
    path = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def cluster_environment(ray_tmp: str, token: str) -> dict:
    """A cluster on this machine: every node on loopback (Ray's single-machine switch, which a
    multi-node cluster refuses without ``Cluster``), clients admitted by ``token``."""
    return {**os.environ, "RAY_TMPDIR": ray_tmp, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}


@contextlib.contextmanager
def ray_cluster(n_nodes: int, env: dict):
    """``{"address", "nodes"}`` of a running cluster of ``n_nodes`` one-CPU nodes, shut down after."""
    process = subprocess.Popen([sys.executable, str(CLUSTER_SCRIPT), str(n_nodes)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line, "the cluster did not start"
        yield json.loads(line)
    finally:
        process.stdin.close()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def _loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def open_ports(process: psutil.Process) -> set:
    """``(ip, port, program)`` of every listening TCP socket and bound UDP socket of
    ``process`` and of every process below it, from the operating system's socket table."""
    found = set()
    try:
        family = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for member in family:
        try:
            for connection in member.net_connections(kind="inet"):
                listening = connection.status == psutil.CONN_LISTEN
                if listening or (connection.type == socket.SOCK_DGRAM and not connection.raddr):
                    found.add((connection.laddr.ip, connection.laddr.port, member.name()))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


def sweep_command(*args) -> list:
    return [sys.executable, "-m", "sda.sweep", *map(str, args)]


def run_watching_ports(args, env, timeout=240):
    """Run a sweep, sampling its processes' open ports until it ends: (process, output, ports)."""
    process = subprocess.Popen(sweep_command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=env)
    watched, ports, deadline = psutil.Process(process.pid), set(), time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        ports |= open_ports(watched)
        time.sleep(0.2)
    output, _ = process.communicate(timeout=60)
    return process, output, ports


def trial_nodes(out: Path) -> set:
    return {json.loads(path.read_text())["node"] for path in (out / "trials").glob("*/trial.json")}


def test_a_local_sweep_opens_ports_on_loopback_only_and_joins_no_cluster(data_dir, tmp_path, ray_tmp):  # noqa: F811
    """Beside a live cluster that the machine's cluster file and RAY_ADDRESS name, and then with
    that file left behind by a cluster since stopped, a local sweep runs on a Ray of its own."""
    config = sweep_file(tmp_path / "sweep.toml", data_dir, "finetune_lr = [0.1]", training_epochs=2)
    # the user's environment: Ray's temp folder (where the cluster file lies), no other Ray setting
    user_env = {**{key: value for key, value in os.environ.items() if not key.startswith("RAY_")},
                "RAY_TMPDIR": ray_tmp}
    with ray_cluster(1, cluster_environment(ray_tmp, secrets.token_hex(16))) as live:
        cluster_file = Path(ray_tmp, "ray", "ray_current_cluster")
        assert cluster_file.read_text().strip() == live["address"]
        process, output, ports = run_watching_ports(
            ["--config", config, "--output-dir", tmp_path / "beside"], {**user_env, "RAY_ADDRESS": live["address"]})
        assert process.returncode == 0, output
        assert trial_nodes(tmp_path / "beside").isdisjoint(live["nodes"])
    # Ray's own processes (its control store, raylet, workers) listen on several ports
    assert len({port for _, port, _ in ports}) >= 3, ports
    assert [entry for entry in ports if not _loopback(entry[0])] == []

    cluster_file.write_text("127.0.0.1:9")  # a cluster since stopped
    process = subprocess.run(sweep_command("--config", config, "--output-dir", tmp_path / "stale"),
                             capture_output=True, text=True, env=user_env, timeout=240)
    assert process.returncode == 0, process.stdout + process.stderr
    assert "Traceback" not in process.stderr


def _finished(out: Path) -> int:
    return len(list((out / "trials").glob("*/results.json")))


def test_a_sweep_on_a_two_node_cluster_spreads_gathers_and_resumes(data_dir, tmp_path, ray_tmp):  # noqa: F811
    """Four trials on two one-CPU nodes: both nodes train; the driver interrupted once a trial
    has finished, ``--resume`` on the cluster finishes the rest; results.csv and summary.csv are
    those a local sweep writes."""
    config = sweep_file(tmp_path / "sweep.toml", data_dir, "finetune_lr = [0.1, 0.2]", extra="seeds = 2",
                        finetune_batch_size=1, config="patience_epochs = 1000")
    out = tmp_path / "out"
    env = cluster_environment(ray_tmp, secrets.token_hex(16))
    with ray_cluster(2, env) as cluster:
        process = subprocess.Popen(sweep_command("--config", config, "--output-dir", out,
                                                 "--address", cluster["address"]),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        deadline = time.monotonic() + 180
        while process.poll() is None and time.monotonic() < deadline and _finished(out) == 0:
            time.sleep(0.1)
        assert process.poll() is None, process.communicate()[0]
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=90)
        assert process.returncode == 130, output
        assert 1 <= _finished(out) < 4, output

        resumed = subprocess.run(sweep_command("--output-dir", out, "--resume", "--address", cluster["address"]),
                                 capture_output=True, text=True, env=env, timeout=240)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert trial_nodes(out) == set(cluster["nodes"])

    rows = read_csv(out / "results.csv")
    assert len(rows) == 4 and {row["status"] for row in rows} == {"finished"}
    assert all(float(row["best_validation_error"]) < 0.5 for row in rows)
    # the same files, column for column, as a local sweep of this file writes from these rows
    sweep = read_sweep(config)
    write_results(tmp_path / "local_results.csv", sweep, rows)
    summary = read_csv(out / "summary.csv")
    write_summary(tmp_path / "local_summary.csv", sweep, summary)
    for name in ("results", "summary"):
        with open(out / f"{name}.csv", newline="") as f, open(tmp_path / f"local_{name}.csv", newline="") as g:
            assert next(csv.reader(f)) == next(csv.reader(g))
    assert [row["trials"] for row in summary] == ["2", "2"]
