"""What KubeRay's own objects say of themselves: a RayCluster that is not healthy (RAY011), a
RayJob that failed or whose submission never started (RAY012), a RayService stuck before serving
(RAY013). Everything here is read from the objects' `status` (KubeRay v1.x field names), which a
snapshot and a live read have and a plain manifest has not, so manifests produce nothing.

"For long" is judged only on the input's own clock: the newest timestamp the input holds, which
is no later than the moment it was read. An object is called stuck only when its own start or
transition time lies at least STUCK_SECONDS before that.
"""

from __future__ import annotations

from datetime import datetime

from doctor.finding import Category, Severity
from doctor.inventory import Inventory, name_of, namespace_of
from doctor.registry import Hit, check

# Pulling a multi-GB Ray image and starting the head takes minutes; a quarter hour is not that.
STUCK_SECONDS = 15 * 60
QUOTE_CHARS = 400
SUBMITTER_CONTAINER_REASONS = ("CrashLoopBackOff", "Error")
FAILED_APP_STATUSES = ("DEPLOY_FAILED", "UNHEALTHY")
# RayService conditions.Ready False reasons that mean it will not serve without a change.
SERVICE_FAILED_REASONS = ("ValidationFailed", "InitializingTimeout", "ZeroServeEndpoints")
SERVICE_SUSPEND_REASONS = ("SuspendRequested", "SuspendInProgress", "SuspendComplete")
# RayService serviceStatus values of KubeRay before v1.3 (no conditions) that are failures.
LEGACY_SERVICE_FAILURES = (
    "FailedToGetOrCreateRayCluster",
    "FailedToGetServeDeploymentStatus",
    "FailedToUpdateIngress",
    "FailedToUpdateServingPodLabel",
    "FailedToUpdateService",
)


def _resource(obj: dict) -> str:
    return f"{obj.get('kind')}/{namespace_of(obj)}/{name_of(obj)}"


def _quote(text) -> str:
    """One line of an object's own message: whitespace collapsed, long text cut at the end."""
    line = " ".join(str(text or "").split())
    return line if len(line) <= QUOTE_CHARS else line[: QUOTE_CHARS - 1] + "…"


def _time(value) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _object_times(obj: dict):
    yield (obj.get("metadata") or {}).get("creationTimestamp")
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    for key in ("lastUpdateTime", "startTime", "endTime", "lastScheduleTime"):
        yield status.get(key)
    # The RayCluster status a RayJob or RayService copies into its own, refreshed as it reconciles.
    for part in (status, status.get("activeServiceStatus"), status.get("pendingServiceStatus")):
        yield ((part or {}).get("rayClusterStatus") or {}).get("lastUpdateTime")
    for condition in status.get("conditions") or []:
        yield condition.get("lastTransitionTime")
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        yield (state.get("running") or {}).get("startedAt")
        yield (state.get("terminated") or {}).get("finishedAt")
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        yield obj.get(key)


def input_clock(inventory: Inventory) -> datetime | None:
    """The newest timestamp in the input: a moment no later than when it was read."""
    times = (
        _time(value)
        for objects in inventory.objects.values()
        for obj in objects
        for value in _object_times(obj)
    )
    return max((t for t in times if t is not None and t.tzinfo is not None), default=None)


class Clock:
    """The input's clock, read once and only when a check needs to judge "for long"."""

    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self._now: datetime | None = None
        self._read = False

    @property
    def now(self) -> datetime | None:
        if not self._read:
            self._now, self._read = input_clock(self.inventory), True
        return self._now

    def seconds_since(self, value) -> float | None:
        since = _time(value)
        if since is None or since.tzinfo is None or self.now is None:
            return None
        return (self.now - since).total_seconds()

    def long_since(self, value) -> bool:
        seconds = self.seconds_since(value)
        return seconds is not None and seconds >= STUCK_SECONDS

    def describe(self, what: str, value) -> str:
        return f"{what} {_time(value).isoformat()}, newest time in the input {self.now.isoformat()}"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


def _conditions(status: dict) -> dict[str, dict]:
    return {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}


def _condition_text(condition: dict) -> str:
    return _quote(f"{condition.get('reason') or ''}: {condition.get('message') or ''}".strip(": "))


def _status(obj: dict) -> dict:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


# -- RAY011: RayCluster health ------------------------------------------------------------------


def _suspended(status: dict, conditions: dict[str, dict]) -> bool:
    return status.get("state") == "suspended" or any(
        (conditions.get(t) or {}).get("status") == "True"
        for t in ("RayClusterSuspended", "RayClusterSuspending")
    )


def _cluster_problems(status: dict, clock: Clock):
    """(severity or None for the check's, message, evidence) for one RayCluster status."""
    conditions = _conditions(status)
    state = status.get("state")
    if state in ("failed", "unhealthy"):
        yield (
            None,
            f"state is {state}: {_quote(status.get('reason')) or 'no reason given'}",
            f"status.state: {state}; status.reason: {_quote(status.get('reason'))}",
        )
    if _suspended(status, conditions):
        yield (
            "info",
            "is suspended: it runs no Ray pods until spec.suspend is false",
            f"status.state: {state}" if state else "condition RayClusterSuspended/Suspending: True",
        )
        return
    failure = conditions.get("ReplicaFailure") or {}
    if failure.get("status") == "True":
        yield (
            None,
            f"cannot create or delete its pods: {_condition_text(failure)}",
            f"condition ReplicaFailure: True, {_condition_text(failure)}",
        )
    head = conditions.get("HeadPodReady") or {}
    if head.get("status") == "False":
        yield _head_not_ready(head, clock)
        return
    provisioned = conditions.get("RayClusterProvisioned") or {}
    since = provisioned.get("lastTransitionTime")
    if provisioned.get("status") == "False" and clock.long_since(since):
        ready = status.get("readyWorkerReplicas", 0)
        desired = status.get("desiredWorkerReplicas", "?")
        yield (
            "warning",
            (
                f"not all its pods have been ready once in {_minutes(clock.seconds_since(since))} "
                f"({ready}/{desired} workers ready): {_condition_text(provisioned)}"
            ),
            (
                f"condition RayClusterProvisioned: False, {_condition_text(provisioned)} "
                f"({clock.describe('since', since)})"
            ),
        )


def _head_not_ready(head: dict, clock: Clock):
    """Error once it has lasted STUCK_SECONDS by the input's clock; a head may still be starting."""
    since = head.get("lastTransitionTime")
    evidence = f"condition HeadPodReady: False, {_condition_text(head)}"
    if not clock.long_since(since):
        return "warning", f"head pod is not ready: {_condition_text(head)}", evidence
    waited = _minutes(clock.seconds_since(since))
    return (
        None,
        f"head pod has not been ready for {waited}: {_condition_text(head)}",
        f"{evidence} ({clock.describe('since', since)})",
    )


def _embedded_cluster_statuses(inventory: Inventory):
    """(owner, cluster name, status) of clusters known only from a RayJob's or RayService's
    status, when the RayCluster object itself is not in the input."""
    for job in inventory.of("RayJob"):
        status = _status(job)
        if status.get("jobDeploymentStatus") in ("Initializing", "Running", "Waiting"):
            yield job, status.get("rayClusterName"), status.get("rayClusterStatus")
    for service in inventory.of("RayService"):
        status = _status(service)
        for side in ("activeServiceStatus", "pendingServiceStatus"):
            part = status.get(side) or {}
            yield service, part.get("rayClusterName"), part.get("rayClusterStatus")


@check(
    code="RAY011",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary=(
        "A RayCluster's status says it is not healthy (failed state, pods not created, head not "
        "ready)"
    ),
    fix=(
        "Read the cluster's status and events (kubectl describe raycluster NAME -n NS) and the "
        "head pod's (kubectl describe pod -l ray.io/cluster=NAME,ray.io/node-type=head -n NS)."
    ),
)
def raycluster_unhealthy(inventory: Inventory):
    clock = Clock(inventory)
    for cluster in inventory.of("RayCluster"):
        namespace, name = namespace_of(cluster), name_of(cluster)
        for severity, message, evidence in _cluster_problems(_status(cluster), clock):
            yield Hit(
                _resource(cluster),
                f"RayCluster {name} {message}",
                evidence,
                fix=_cluster_fix(name, namespace),
                severity=severity,
            )
    for owner, name, status in _embedded_cluster_statuses(inventory):
        namespace = namespace_of(owner)
        if not name or not isinstance(status, dict) or inventory.get("RayCluster", namespace, name):
            continue
        for severity, message, evidence in _cluster_problems(status, clock):
            yield Hit(
                _resource(owner),
                f"{owner.get('kind')} {name_of(owner)}'s RayCluster {name} {message}",
                f"{_resource(owner)} status (rayClusterStatus of {name}): {evidence}",
                fix=_cluster_fix(name, namespace),
                severity=severity,
            )


def _cluster_fix(name: str, namespace: str) -> str:
    return (
        f"Look further: `kubectl describe raycluster {name} -n {namespace}` and "
        f"`kubectl describe pod -l ray.io/cluster={name},ray.io/node-type=head -n {namespace}`; "
        "fix what the condition names (quota, image, scheduling, head start-up)."
    )


# -- RAY012: RayJob failures and stuck submissions ----------------------------------------------


def _job_fix(name: str, namespace: str, logs: bool) -> str:
    look = f"`kubectl describe rayjob {name} -n {namespace}`"
    if logs:
        look += f" and `kubectl logs -l job-name={name} -n {namespace}` (the submitter's log)"
    return f"Look further: {look}; fix the cause it names, then delete and re-apply the RayJob."


def _owned_by_job(pod: dict, job_name: str) -> bool:
    metadata = pod.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if job_name in (labels.get("job-name"), labels.get("batch.kubernetes.io/job-name")):
        return True
    return any(
        ref.get("kind") == "Job" and ref.get("name") == job_name
        for ref in metadata.get("ownerReferences") or []
    )


def _container_failure(container: dict) -> str | None:
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    terminated = state.get("terminated") or (container.get("lastState") or {}).get("terminated")
    if waiting.get("reason") not in SUBMITTER_CONTAINER_REASONS and not (
        terminated and terminated.get("exitCode") not in (0, None)
    ):
        return None
    parts = [f"container {container.get('name')}"]
    if waiting.get("reason"):
        parts.append(f"waiting {waiting['reason']}")
    if terminated:
        parts.append(f"exit {terminated.get('exitCode')} {terminated.get('reason') or ''}".strip())
        if terminated.get("message"):
            parts.append(_quote(terminated["message"]))
    parts.append(f"restarts {container.get('restartCount', 0)}")
    return ", ".join(parts)


def _last_log_line(inventory: Inventory, pod: dict, container: str) -> str | None:
    logs = inventory.live.logs or {}
    text = logs.get(f"Pod/{namespace_of(pod)}/{name_of(pod)}/{container}") or ""
    lines = [line for line in str(text).splitlines() if line.strip()]
    return _quote(lines[-1]) if lines else None


def submitter_failures(inventory: Inventory, job: dict) -> tuple[list[str], bool]:
    """What the input shows of the submitter Kubernetes Job (named like the RayJob) failing, and
    whether one of its pods is still at work (a retry that may yet submit)."""
    namespace, name = namespace_of(job), name_of(job)
    failures, active = [], False
    submitter = _status(inventory.get("Job", namespace, name) or {})
    if (submitter.get("failed") or 0) > 0:
        failures.append(f"Job/{namespace}/{name} status.failed: {submitter['failed']}")
    for condition in submitter.get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            failures.append(f"Job/{namespace}/{name} Failed: {_condition_text(condition)}")
    for pod in inventory.in_namespace("Pod", namespace):
        if not _owned_by_job(pod, name):
            continue
        pod_failures = []
        for container in _status(pod).get("containerStatuses") or []:
            failure = _container_failure(container)
            if failure:
                line = _last_log_line(inventory, pod, container.get("name"))
                pod_failures.append(
                    f"Pod/{namespace}/{name_of(pod)} {failure}" + (f"; log: {line}" if line else "")
                )
        failures += pod_failures
        active |= not pod_failures and _status(pod).get("phase") in ("Pending", "Running")
    for event in inventory.events_by_object.get(("Job", namespace, name), []):
        if event.get("type") == "Warning":
            failures.append(f"event {event.get('reason')}: {_quote(event.get('message'))}")
    return failures, active


def _submitter_hit(status: dict, failures: list[str], active: bool, shown: str):
    """A recorded jobStatus (PENDING) means the dashboard accepted the job; none means no
    submission is known to have reached it."""
    dashboard = status.get("dashboardURL") or "unknown"
    what = (
        f"its Ray job is still PENDING while the submitter Job fails (dashboard {dashboard})"
        if status.get("jobStatus")
        else f"cannot submit its Ray job: the submitter Job fails and no Ray job status is "
        f"recorded (dashboard {dashboard})"
    )
    if active:
        what += "; a newer submitter pod is still running"
    return ("warning" if active else None), what, f"{shown}; " + "; ".join(failures)


def _job_failure(status: dict):
    """(severity or None, message, evidence) when the RayJob's status records a failure."""
    deployment, job_status = status.get("jobDeploymentStatus"), status.get("jobStatus")
    reason, message = status.get("reason"), _quote(status.get("message"))
    said = f": {message}" if message else ""
    evidence = (
        f"jobDeploymentStatus: {deployment}; jobStatus: {job_status or '(none)'}; "
        f"reason: {reason or '(none)'}; message: {message or '(none)'}"
    )
    if deployment == "ValidationFailed":
        return None, f"failed KubeRay's validation and will not run{said}", evidence
    if deployment == "Failed":
        return None, f"failed ({reason or 'no reason given'}){said}", evidence
    if job_status == "FAILED":
        return None, f"its Ray job failed{said}", evidence
    if job_status == "STOPPED":
        return "warning", f"its Ray job was stopped before it finished{said}", evidence
    return None


def _job_stuck(inventory: Inventory, job: dict, clock: Clock):
    """(severity or None, message, evidence) when the data proves the job has not started."""
    status = _status(job)
    deployment, job_status = status.get("jobDeploymentStatus"), status.get("jobStatus") or ""
    if deployment not in ("Initializing", "Running") or job_status not in ("", "PENDING"):
        return None
    mode = (job.get("spec") or {}).get("submissionMode") or "K8sJobMode"
    shown = f"jobDeploymentStatus: {deployment}; jobStatus: {job_status or '(none)'}"
    if deployment == "Running" and mode == "K8sJobMode":
        failures, active = submitter_failures(inventory, job)
        if failures:
            return _submitter_hit(status, failures, active, shown)
    since = status.get("startTime")
    if not clock.long_since(since):
        return None
    waited = _minutes(clock.seconds_since(since))
    evidence = f"{shown}; {clock.describe('startTime', since)}"
    if deployment == "Initializing":
        head = _conditions(status.get("rayClusterStatus") or {}).get("HeadPodReady") or {}
        detail = f": head pod {_condition_text(head)}" if head.get("status") == "False" else ""
        return (
            "warning",
            (
                f"is still Initializing {waited} after it started: its RayCluster "
                f"{status.get('rayClusterName') or ''} never became ready{detail}"
            ),
            evidence,
        )
    return (
        "warning",
        (
            f"has had no running Ray job for {waited} after it started ({mode}): the job was "
            "not submitted or waits for resources"
        ),
        evidence,
    )


@check(
    code="RAY012",
    severity=Severity.ERROR,
    category=Category.JOBS,
    summary=(
        "A RayJob failed, or its Ray job never started (submitter failing, cluster never ready)"
    ),
    fix=(
        "Read the RayJob's status and events (kubectl describe rayjob NAME -n NS) and the "
        "submitter's log (kubectl logs -l job-name=NAME -n NS)."
    ),
)
def rayjob_failed_or_stuck(inventory: Inventory):
    clock = Clock(inventory)
    for job in inventory.of("RayJob"):
        status = _status(job)
        found = _job_failure(status) or _job_stuck(inventory, job, clock)
        if not found:
            continue
        severity, message, evidence = found
        mode = (job.get("spec") or {}).get("submissionMode") or "K8sJobMode"
        yield Hit(
            _resource(job),
            f"RayJob {name_of(job)} {message}",
            evidence,
            fix=_job_fix(name_of(job), namespace_of(job), logs=mode == "K8sJobMode"),
            severity=severity,
        )


# -- RAY013: RayService stuck before serving ----------------------------------------------------


def _failing_apps(part: dict) -> list[str]:
    """'app STATUS: message' for each Serve application (and its failing deployments)."""
    found = []
    for app, app_status in (part.get("applicationStatuses") or {}).items():
        if not isinstance(app_status, dict) or app_status.get("status") not in FAILED_APP_STATUSES:
            continue
        text = f"app {app} {app_status['status']}: {_quote(app_status.get('message'))}"
        for deployment, info in (app_status.get("serveDeploymentStatuses") or {}).items():
            if isinstance(info, dict) and info.get("status") in ("UNHEALTHY", "DEPLOY_FAILED"):
                text += f"; deployment {deployment} {info['status']}: {_quote(info.get('message'))}"
        found.append(text)
    return found


def _serve_endpoints(status: dict) -> int | None:
    """KubeRay omits the count when it is 0; v1.3+ (the one with conditions) always has it."""
    for key in ("numServeEndpoints", "NumServeEndpoints"):
        if key in status:
            return status[key]
    return 0 if "conditions" in status else None


def _service_facts(status: dict, apps: list[str]) -> list[str]:
    endpoints = _serve_endpoints(status)
    return (
        ([f"serve endpoints: {endpoints}"] if endpoints is not None else [])
        + apps
        + ([f"serviceStatus: {status['serviceStatus']}"] if status.get("serviceStatus") else [])
    )


def _service_problem(status: dict, clock: Clock):
    """(severity or None, message, evidence) when the RayService is not serving."""
    active = status.get("activeServiceStatus") or {}
    apps = _failing_apps(active)
    if not active.get("rayClusterName"):  # the first cluster stays pending until it serves
        apps += _failing_apps(status.get("pendingServiceStatus") or {})
    facts = _service_facts(status, apps)
    ready = _conditions(status).get("Ready")
    if ready is None:  # KubeRay before v1.3: serviceStatus only
        legacy = status.get("serviceStatus")
        if legacy == "Running" and apps:
            return None, f"serves, but a Serve application failed: {apps[0]}", "; ".join(facts)
        if legacy in LEGACY_SERVICE_FAILURES or (legacy and apps):
            said = f": {apps[0]}" if apps else ""
            return None, f"is not serving (serviceStatus {legacy}){said}", "; ".join(facts)
        return None
    if ready.get("status") == "True":
        if apps:
            return None, f"serves, but a Serve application failed: {apps[0]}", "; ".join(facts)
        return None
    if ready.get("reason") in SERVICE_SUSPEND_REASONS:
        return None
    since = ready.get("lastTransitionTime")
    failed = ready.get("reason") in SERVICE_FAILED_REASONS or bool(apps)
    long = clock.long_since(since)
    if not failed and not long:
        return None
    message = (
        "is not serving"
        + (f" after {_minutes(clock.seconds_since(since))}" if long else "")
        + f" (Ready False, {_condition_text(ready)})"
        + (f": {apps[0]}" if apps else "")
    )
    evidence = [f"condition Ready: False, {_condition_text(ready)}"] + facts
    if long:
        evidence.append(clock.describe("since", since))
    return (None if failed else "warning"), message, "; ".join(evidence)


@check(
    code="RAY013",
    severity=Severity.ERROR,
    category=Category.AVAILABILITY,
    summary=(
        "A RayService is not serving: not Ready, its Serve application failed, or no serve "
        "endpoints"
    ),
    fix="Read the RayService's status (kubectl get rayservice NAME -n NS -o yaml): the Serve "
    "application's message names the error in serveConfigV2, the image or the code.",
)
def rayservice_not_serving(inventory: Inventory):
    clock = Clock(inventory)
    for service in inventory.of("RayService"):
        status = _status(service)
        if not status:
            continue
        name, namespace = name_of(service), namespace_of(service)
        fix = (
            f"Look further: `kubectl get rayservice {name} -n {namespace} -o yaml` (the "
            f"application message) and `kubectl describe rayservice {name} -n {namespace}` "
            "(events); fix serveConfigV2, the image's dependencies or the Serve code it names."
        )
        found = _service_problem(status, clock)
        if found:
            severity, message, evidence = found
            yield Hit(_resource(service), f"RayService {name} {message}", evidence, fix, severity)
        yield from _upgrade_hits(service, status, clock, fix)


def _upgrade_hits(service: dict, status: dict, clock: Clock, fix: str):
    """A new cluster that does not come up while the old one keeps serving."""
    active = status.get("activeServiceStatus") or {}
    pending = status.get("pendingServiceStatus") or {}
    if not active.get("rayClusterName") or not pending.get("rayClusterName"):
        return
    apps = _failing_apps(pending)
    upgrade = _conditions(status).get("UpgradeInProgress") or {}
    since = upgrade.get("lastTransitionTime")
    long = upgrade.get("status") == "True" and clock.long_since(since)
    if not apps and not long:
        return
    waited = f" for {_minutes(clock.seconds_since(since))}" if long else ""
    yield Hit(
        _resource(service),
        f"RayService {name_of(service)}'s upgrade to RayCluster {pending['rayClusterName']} is "
        f"stuck{waited}; traffic stays on {active['rayClusterName']}"
        + (f": {apps[0]}" if apps else ""),
        "; ".join(
            [f"pendingServiceStatus.rayClusterName: {pending['rayClusterName']}"]
            + apps
            + ([clock.describe("UpgradeInProgress True since", since)] if long else [])
        ),
        fix=fix,
        severity=Severity.WARNING,
    )
