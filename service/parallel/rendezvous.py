"""How a job group's ranks find each other without a socket anyone else can reach.

Every rank of a group is on one node (the placement group is STRICT_PACK; on Kubernetes one Ray
node is one pod), so they meet through a torch.distributed FileStore in a fresh directory only
this user can enter, made by the group's leader and removed when the group closes. After the
handshake, gloo's pair sockets and NCCL's bootstrap bind to loopback: a TCP store or an
interface picked from the host name would listen on the node's network, unauthenticated.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import MutableMapping
from dataclasses import dataclass

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

log = logging.getLogger(__name__)
# The interface variables gloo and NCCL read when a process group is created.
SOCKET_INTERFACE_VARIABLES = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")
LOOPBACK_INTERFACE = "lo"
REMOVE_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Rendezvous:
    """A private directory on one node holding the group's FileStore."""

    directory: str
    node_id: str

    @classmethod
    def create(cls) -> Rendezvous:
        """mkdtemp makes the directory with mode 0700, under a name no other formation has."""
        directory = tempfile.mkdtemp(prefix="mochi-rendezvous-")
        return cls(directory, ray.get_runtime_context().get_node_id())

    @property
    def init_method(self) -> str:
        return f"file://{self.directory}/store"

    def remove(self) -> None:
        """From any process of the cluster: here where it runs on the directory's node, else by
        a task pinned to that node."""
        if ray.get_runtime_context().get_node_id() == self.node_id:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            remove_on_node(self.node_id, self.directory)


@ray.remote(num_cpus=0, max_retries=0)
def _remove_directory(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def remove_on_node(node_id: str, directory: str) -> None:
    """Best effort: a node that is gone took its directory with it."""
    pinned = NodeAffinitySchedulingStrategy(node_id, soft=False)
    removal = _remove_directory.options(scheduling_strategy=pinned).remote(directory)
    try:
        ray.get(removal, timeout=REMOVE_TIMEOUT_SECONDS)
    except ray.exceptions.RayError as error:
        log.warning("rendezvous directory %s on node %s not removed: %s", directory, node_id, error)


def bind_to_loopback(environ: MutableMapping[str, str] = os.environ) -> None:
    """Each rank's process, before it creates the process group; an interface the operator
    named stays theirs."""
    for name in SOCKET_INTERFACE_VARIABLES:
        environ.setdefault(name, LOOPBACK_INTERFACE)
