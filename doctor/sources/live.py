"""A live read: every component probed at once, each probe with its own timeout, the whole read
inside the run's deadline. What could not be read becomes a probe failure (a finding), never an
exception: the doctor reports an unreachable component, it does not die of it."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from doctor.inventory import Inventory
from doctor.redaction import KnownSecrets
from doctor.sources.files import InputError
from doctor.sources.output_probe import write_probe
from doctor.sources.probe import Deadline, Probe, describe, failure_kind, redact_url, tcp_probe
from doctor.sources.record import Redactor
from doctor.state import JobsState, KubernetesRead, RayState, RedisState, ServiceState

LOCAL_FILE = "local.json"
# Rendering and writing the report after the read needs a moment of the deadline.
RENDER_RESERVE = 0.1
RENDER_RESERVE_MAX = 1.0
SOURCE_NAMES = {
    "kubernetes": "Kubernetes",
    "ray": "Ray",
    "redis": "Redis",
    "api": "the API",
    "output": "the output volume",
}


@dataclass
class LiveOptions:
    context: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    kubeconfig: str | None = None
    ray_address: str | None = None
    dashboard_url: str | None = None
    redis_url: str | None = None
    redis_password: str | None = None
    ray_auth_token: str | None = None
    api_url: str | None = None
    output_dir: str | None = None
    kubernetes: bool = False
    probe_from_pod: bool = False
    timeout: float = 30.0

    @property
    def wanted(self) -> bool:
        return bool(self.kubernetes or self.ray_address or self.redis_url or self.api_url)


def local_addresses(path: str) -> dict:
    """`.mochi/local.json`, or the folder holding it: what `mochi local` wrote."""
    file = Path(path)
    if file.is_dir() or not file.suffix:
        file = file / LOCAL_FILE
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise InputError(f"{file} not found: is `mochi local` running?") from None
    except (OSError, ValueError) as error:
        raise InputError(f"{file}: cannot read: {error}") from None
    if not isinstance(data, dict):
        raise InputError(f"{file}: not an address file")
    return data


def options_from_local(path: str, timeout: float) -> LiveOptions:
    data = local_addresses(path)
    return LiveOptions(
        ray_address=data.get("ray_address"),
        dashboard_url=data.get("dashboard_url"),
        redis_url=data.get("redis_url"),
        redis_password=data.get("redis_password"),
        ray_auth_token=data.get("ray_auth_token"),
        api_url=data.get("api_url"),
        output_dir=data.get("output_dir"),
        timeout=timeout,
    )


def read_live(
    options: LiveOptions,
    inventory: Inventory | None = None,
    progress: Callable[[str], None] | None = None,
) -> Inventory:
    """`progress` (when given) hears one line as each source starts and one as it ends."""
    inventory = inventory or Inventory(source="live")
    inventory.source = "live"
    deadline = Deadline(options.timeout)
    reserve = min(RENDER_RESERVE_MAX, options.timeout * RENDER_RESERVE)
    read_deadline = Deadline(max(0.1, options.timeout - reserve))
    # Probes give up a little before the read does, so each names its own failure.
    probe_deadline = Deadline(max(0.05, read_deadline.seconds - reserve))
    tasks, targets = _tasks(options, probe_deadline)
    from doctor.sources.probe import run_with_deadline

    reporter = SourceProgress(progress)
    results, errors, pending = run_with_deadline(reporter.wrap(tasks), read_deadline)
    reporter.close(pending, options.timeout)
    probes: list[Probe] = []
    redactor = _redactor(results)
    for name, value in results.items():
        probes.extend(_apply(name, value, inventory, redactor))
    for name, error in errors.items():
        probes.append(Probe(name, targets[name], False, failure_kind(error), describe(error)))
    for name in pending:
        probes.append(
            Probe(
                name,
                targets[name],
                False,
                "timeout",
                f"no answer within the run's deadline ({options.timeout:g}s)",
            )
        )
    if os.environ.get("KUBERNETES_SERVICE_HOST") and "kubernetes" in results:
        probes.extend(_address_probes(inventory, deadline))
    inventory.live.probes = probes
    return inventory


def _tasks(options: LiveOptions, deadline: Deadline):
    from doctor.sources.kube_live import read_kubernetes
    from doctor.sources.ray_live import read_ray
    from doctor.sources.redis_live import read_redis
    from doctor.sources.service_live import read_service

    password = options.redis_password or os.environ.get("MOCHI_REDIS_PASSWORD") or None
    tasks, targets = {}, {}
    if options.kubernetes:
        tasks["kubernetes"] = lambda: read_kubernetes(
            options.context,
            options.namespace,
            deadline,
            options.probe_from_pod,
            kubeconfig=options.kubeconfig,
            all_namespaces=options.all_namespaces,
        )
        targets["kubernetes"] = options.context or options.kubeconfig or "kubeconfig"
    if options.ray_address:
        tasks["ray"] = lambda: read_ray(
            options.ray_address, options.dashboard_url, deadline, options.ray_auth_token
        )
        targets["ray"] = options.dashboard_url or options.ray_address
    if options.redis_url:
        tasks["redis"] = lambda: read_redis(options.redis_url, password, deadline)
        targets["redis"] = redact_url(options.redis_url)
    if options.api_url:
        tasks["api"] = lambda: read_service(options.api_url, deadline)
        targets["api"] = options.api_url
    if options.output_dir:
        tasks["output"] = lambda: write_probe(options.output_dir)
        targets["output"] = options.output_dir
    return tasks, targets


class SourceProgress:
    """Times each source's task and tells `report` as it starts and ends. Once the read is
    over, a task still running past the deadline says nothing more: the report follows."""

    def __init__(self, report: Callable[[str], None] | None):
        self.report = report
        self.lock = threading.Lock()
        self.open = True

    def wrap(self, tasks: dict[str, Callable[[], object]]) -> dict[str, Callable[[], object]]:
        if self.report is None:
            return tasks
        return {name: self._timed(name, task) for name, task in tasks.items()}

    def close(self, pending: list[str], timeout: float) -> None:
        for name in pending:
            self._say(f"reading {SOURCE_NAMES[name]}… no answer within {timeout:g} s")
        with self.lock:
            self.open = False

    def _timed(self, name: str, task: Callable[[], object]) -> Callable[[], object]:
        def run():
            self._say(f"reading {SOURCE_NAMES[name]}…")
            started = time.monotonic()
            outcome = ", failed"
            try:
                value = task()
                outcome = ""
                return value
            finally:
                self._say(
                    f"reading {SOURCE_NAMES[name]}… {time.monotonic() - started:.1f} s{outcome}"
                )

        return run

    def _say(self, line: str) -> None:
        with self.lock:
            if self.open and self.report is not None:
                self.report(line)


def _redactor(results: dict) -> Redactor:
    """Masks the read's secrets (doctor.sources.record) before the inventory holds any of it: the
    Secrets' values are kept only as long as it takes to build this, never in the inventory."""
    kubernetes = results.get("kubernetes")
    values = kubernetes.secret_values if kubernetes is not None else set()
    redactor = Redactor(KnownSecrets(values))
    values.clear()
    return redactor


def _apply(name: str, value, inventory: Inventory, redactor: Redactor) -> list[Probe]:
    redact, live = redactor.redact, inventory.live
    if name == "kubernetes":
        for obj in value.objects:
            inventory.add(redact(obj), origin=f"live:{value.server}")
        live.kubernetes = KubernetesRead(value.server, value.namespace, value.errors)
        if value.logs:
            live.logs = redact(value.logs)
        return value.probes
    if name == "ray":
        state, probes = value
        live.ray = RayState.from_json(redact(state))
        return probes
    if name == "redis":
        state, jobs, probe = value
        live.redis = RedisState.from_json(redact(state))
        if jobs:
            live.jobs = JobsState.from_json(_redacted_jobs(jobs, redactor))
        return [probe]
    if name == "api":
        state, probe = value
        live.service = ServiceState.from_json(redact(state))
        return [probe]
    return [value]  # output: a Probe


def _redacted_jobs(jobs: dict, redactor: Redactor) -> dict:
    """The job summaries redis_live builds are ids, states and figures: only an error text can
    quote a secret, and walking every field of 20,000 jobs would spend seconds of the deadline."""
    summaries = [{**job, "error": redactor.redact(job.get("error") or "")} for job in jobs["jobs"]]
    return {**redactor.redact({k: v for k, v in jobs.items() if k != "jobs"}), "jobs": summaries}


def _address_probes(inventory: Inventory, deadline: Deadline) -> list[Probe]:
    """In a pod, every address the deployment names is probed from where the doctor runs."""
    from doctor.addresses import all_addresses, is_bind_or_loopback
    from doctor.sources.probe import run_with_deadline

    targets = {}
    for address in all_addresses(inventory):
        if address.port and address.host and not is_bind_or_loopback(address.host):
            targets.setdefault(f"{address.host}:{address.port}", address)
    tasks = {
        key: (lambda a=a: tcp_probe("address", a.host, a.port, deadline, resource=a.resource))
        for key, a in targets.items()
    }
    results, errors, pending = run_with_deadline(tasks, deadline)
    probes = list(results.values())
    for key in list(errors) + pending:
        address = targets[key]
        probes.append(
            Probe("address", key, False, "timeout", "no answer", resource=address.resource)
        )
    return probes
