"""Where a sweep's Ray runs: a Ray of the sweep's own on this machine, reachable from it only,
or a running cluster joined by its address.

A local Ray is started with ``address="local"`` (no cluster file, live cluster or
``RAY_ADDRESS`` is joined) and Ray's single-machine setting, which puts its node and every port
it opens on the loopback address; Ray reads that setting when it is first imported, so Ray is
imported here, by :func:`import_ray`, and nowhere at a module's top.  On a cluster every node
must see the sweep's output folder as the driver does (:func:`check_shared_folder`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import ipaddress
import logging
import os
from pathlib import Path

__all__ = ["SweepError", "SINGLE_MACHINE", "import_ray", "ray_module", "tune_module", "start_ray",
           "check_shared_folder", "shut_down_ray_on_error"]


class SweepError(ValueError):
    """The sweep cannot start as asked: output folder, resume, data, or Ray itself."""


#: Ray's single-machine switch (its default on macOS and Windows): every node and port on the
#: loopback address.  Ray reads it when first imported, so Ray is imported only in functions,
#: after a local sweep has set it (a sweep joining a cluster must not).
SINGLE_MACHINE = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def ray_module():
    return importlib.import_module("ray")


def tune_module():
    return importlib.import_module("ray.tune")


def import_ray(local: bool) -> None:
    """Import Ray Tune, first setting Ray's single-machine switch for a local sweep."""
    if local:
        os.environ.update(SINGLE_MACHINE)
        # token authentication, as Ray turns on by default for a local cluster, without its
        # warning; read at import too, hence here
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    try:
        importlib.import_module("ray.tune")
    except ImportError:
        raise SweepError('sweeps need Ray Tune: pip install -e ".[sweep]"') from None


def cores() -> int:
    """The cores this process may use (all of the machine's where the OS cannot tell)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def start_ray(address: str | None) -> None:
    """Join the cluster at ``address``, or start a Ray of this process's own on every core,
    whatever clusters the machine knows of (``address="local"``), reachable from this machine
    only: its node address and every port on loopback, no dashboard.  The workers' output is
    kept out of this terminal."""
    # a failed trial's last report holds its message, not the scheduler's metric, which Tune
    # would take for a mistake in the trainable
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    options = {"logging_level": logging.WARNING, "log_to_driver": False}
    ray = ray_module()
    if address:
        try:
            ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise SweepError(f"cannot join the Ray cluster at {address}: {' '.join(str(exc).split())}") from None
        return
    ray.init(address="local", num_cpus=cores(), include_dashboard=False, **options)
    if not ipaddress.ip_address(ray.util.get_node_ip_address()).is_loopback:
        ray.shutdown()
        raise SweepError(f"Ray was imported in this process before the sweep, so a local Ray would listen on "
                         f"{ray.util.get_node_ip_address()}: start the sweep in a new process "
                         f"(python -m sda.sweep), or join a cluster with --address")


def check_shared_folder(output_dir: Path, file_name: str) -> None:
    """On a cluster, every node must see ``output_dir`` as this machine does (a shared file
    system): each node reads the file ``file_name`` just written there, and a node that finds
    another file, or none, stops the sweep before any trial starts."""
    ray = ray_module()
    expected = hashlib.sha256((output_dir / file_name).read_bytes()).hexdigest()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def digest(path: str):
        try:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        except OSError:
            return None

    nodes = [node for node in ray.nodes() if node["Alive"]]
    found = ray.get([digest.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False))
                     .remote(str(output_dir / file_name)) for node in nodes])
    for node, value in zip(nodes, found):
        if value != expected:
            raise SweepError(f"node {node['NodeManagerAddress']} does not see {output_dir} as this machine does "
                             f"(its {file_name} is {'missing' if value is None else 'another file'}): on a "
                             f"cluster, --output-dir must be on a file system that every node shares")


@contextlib.contextmanager
def shut_down_ray_on_error():
    try:
        yield
    except BaseException:
        ray_module().shutdown()
        raise
