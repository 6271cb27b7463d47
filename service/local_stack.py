"""The embedded local stack: a real Redis, a local Ray head, the pool (tiny model) and the API,
started and stopped together; it stops only what it started.

Redis and the API listen on 127.0.0.1 only, Redis with a random password. Ray's own servers
bind every interface (Ray rewrites a loopback --node-ip-address to the host's address), so the
head runs with token auth, a random token, as the cluster does. The state folder is 0700 and
the address file that hands out the key, the password and the token is 0600."""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import uvicorn

from service import auth
from service.api import create_app
from service.config import API_PORT, Settings
from service.jobstore import JobStore
from service.processes import RayHead, RedisServer, free_port, write_private
from service.supervisor import Supervisor

ADDRESS_FILE = "local.json"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LocalStack:
    base_dir: Path = Path(".mochi")
    api_port: int = API_PORT
    settings: Settings = field(default_factory=lambda: Settings(lease_seconds=5.0, workers=1))
    redis_port: int = 0
    api_key: str = ""
    redis: RedisServer | None = None
    ray: RayHead | None = None
    supervisor: Supervisor | None = None
    _server: uvicorn.Server | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def address_file(self) -> Path:
        return self.base_dir / ADDRESS_FILE

    def start(self, progress=print, ready_timeout: float = 120.0) -> LocalStack:
        self.base_dir = self.base_dir.resolve()
        self.base_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.base_dir.chmod(0o700)  # mkdir leaves an existing folder's mode as it was
        try:
            self._start_redis(progress)
            self._start_ray(progress)
            self._start_supervisor(progress)
            self._start_api(progress)
            self._wait_for_workers(ready_timeout)
        except BaseException:
            self.stop(keep_logs=True)
            raise
        self._write_address_file()
        return self

    def _start_redis(self, progress) -> None:
        self.redis_port = self.redis_port or free_port()
        self.redis = RedisServer(
            self.base_dir / "redis",
            self.redis_port,
            password=secrets.token_urlsafe(32),
            appendfsync=self.settings.redis_appendfsync,
        ).start()
        output_dir = self.base_dir / "videos"
        output_dir.mkdir(exist_ok=True)
        self.settings = replace(
            self.settings,
            redis_url=self.redis.url,
            redis_password=self.redis.password,
            output_dir=str(output_dir),
            model="tiny",
        )
        client = self.redis.client()
        self.api_key = self.api_key or auth.add_key(client, "local")
        auth.add_key(client, "local", self.api_key)
        progress(
            f"redis      {self.redis.url} (password in {self.address_file}; "
            f"AOF appendfsync {self.redis.appendfsync} in {self.redis.data_dir})"
        )

    def _start_ray(self, progress) -> None:
        self.ray = RayHead(
            self.base_dir,
            gcs_port=free_port(),
            dashboard_port=free_port(),
            num_cpus=self.settings.workers * self.settings.gpus_per_job + 1,
            auth_token=secrets.token_hex(32),
        )
        self.settings = replace(self.settings, ray_dashboard_url=self.ray.dashboard_url)
        self.ray.start(self._ray_env())
        progress(f"ray        {self.ray.address} (dashboard {self.ray.dashboard_url}, token auth)")

    def _ray_env(self) -> dict[str, str]:
        """The cluster's environment is where the pool reads its settings, as on Kubernetes."""
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        python_path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        return {
            **self.settings.to_env(),
            "PATH": path,
            "PYTHONPATH": python_path,
            "RAY_DEDUP_LOGS": "0",
        }

    def _start_supervisor(self, progress) -> None:
        self.supervisor = Supervisor(self.settings, ray_auth_token=self.ray.auth_token)
        self._spawn(self.supervisor.run, "supervisor")
        progress(f"pool       {self.settings.workers} worker(s), model {self.settings.model}")

    def _start_api(self, progress) -> None:
        app = create_app(self.settings)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.api_port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._spawn(self._server.run, "api")
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._threads[-1].is_alive():
                raise RuntimeError(f"API did not start on {self.api_url} (port in use?)")
            time.sleep(0.05)
        progress(f"api        {self.api_url}")

    def _spawn(self, target, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def store(self) -> JobStore:
        return JobStore.from_settings(self.redis.client(), self.settings)

    def _wait_for_workers(self, timeout: float) -> None:
        store = self.store()
        deadline = time.monotonic() + timeout
        while len(store.live_workers(self.settings.worker_ttl_seconds)) < self.settings.workers:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"workers did not come up in {timeout:.0f}s; "
                    f"see {self.ray.temp_dir / 'session_latest' / 'logs'}"
                )
            time.sleep(0.2)

    def addresses(self) -> dict[str, str]:
        return {
            "api_url": self.api_url,
            "api_key": self.api_key,
            "redis_url": self.settings.redis_url,
            "redis_password": self.redis.password,
            "ray_address": self.ray.address,
            "ray_auth_token": self.ray.auth_token,
            "dashboard_url": self.ray.dashboard_url,
            "output_dir": self.settings.output_dir,
        }

    def _write_address_file(self) -> None:
        write_private(self.address_file, json.dumps(self.addresses(), indent=2) + "\n")

    def stop(self, keep_logs: bool = False) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self.supervisor is not None:
            self.supervisor.stop()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.ray is not None:
            self.ray.stop(keep_logs)
        if self.redis is not None:
            self.redis.stop()
        self.address_file.unlink(missing_ok=True)


def read_address_file(base_dir: Path = Path(".mochi")) -> dict[str, str]:
    path = base_dir / ADDRESS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} not found: is `mochi local` running?") from None
