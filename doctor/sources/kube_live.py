"""Kubernetes, live, through the official client: the objects the snapshot path reads (as the
API serves them, JSON), events, the last log lines of failing containers, and --probe-from-pod
(the doctor's probes run inside a Ray worker and an API pod via exec)."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from doctor.redaction import REDACTED, secret_values
from doctor.sources.output_probe import POD_SCRIPT, parse_pod_answer
from doctor.sources.probe import Deadline, Probe, describe, failure_kind

LOG_LINES = 30
# (API class, list method, namespaced): what `doctor diagnose` reads of a namespace.
NAMESPACED = (
    ("CoreV1Api", "list_namespaced_pod"),
    ("CoreV1Api", "list_namespaced_service"),
    ("CoreV1Api", "list_namespaced_endpoints"),
    ("CoreV1Api", "list_namespaced_config_map"),
    ("CoreV1Api", "list_namespaced_secret"),
    ("CoreV1Api", "list_namespaced_persistent_volume_claim"),
    ("CoreV1Api", "list_namespaced_event"),
    ("CoreV1Api", "list_namespaced_resource_quota"),
    ("CoreV1Api", "list_namespaced_limit_range"),
    ("AppsV1Api", "list_namespaced_deployment"),
    ("AppsV1Api", "list_namespaced_stateful_set"),
    ("AppsV1Api", "list_namespaced_daemon_set"),
    ("AppsV1Api", "list_namespaced_replica_set"),
    ("BatchV1Api", "list_namespaced_job"),
    ("NetworkingV1Api", "list_namespaced_network_policy"),
)
CLUSTER = (("CoreV1Api", "list_node"),)
# KubeRay's kinds (group ray.io, version v1): kind -> plural. Each is read beside the core
# objects; a kind whose CRD is not installed is simply absent.
KUBERAY_PLURALS = {
    "RayCluster": "rayclusters",
    "RayJob": "rayjobs",
    "RayService": "rayservices",
    "RayCronJob": "raycronjobs",
}
DROPPED_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


@dataclass
class KubeRead:
    objects: list[dict]
    logs: dict[str, str]
    probes: list[Probe]
    errors: dict[str, str]
    namespace: str | None  # None: every namespace (-A)
    server: str
    # The values the Secrets held (their objects keep only the key names): the live read masks
    # them wherever else they appear, then drops them (doctor.sources.live).
    secret_values: set[str] = field(default_factory=set, repr=False)


def kubeconfig_files(kubeconfig: str | None = None) -> str | None:
    """--kubeconfig, else KUBECONFIG (read now: the client reads it once, at import), else the
    client's default ~/.kube/config (None)."""
    return kubeconfig or os.environ.get("KUBECONFIG") or None


def context_names(kubeconfig: str | None = None) -> list[str] | None:
    """The contexts the kubeconfig defines, or None when there is no kubeconfig to read."""
    from kubernetes import config

    try:
        contexts, _ = config.list_kube_config_contexts(kubeconfig_files(kubeconfig))
    except Exception:  # missing or unreadable: the read itself reports why, as a finding
        return None
    return [c["name"] for c in contexts or []]


def api_client(context: str | None, kubeconfig: str | None = None):
    """(ApiClient, namespace of the context, server URL): kubeconfig, else in-cluster."""
    from kubernetes import client, config

    configuration = client.Configuration()
    namespace = None
    files = kubeconfig_files(kubeconfig)
    try:
        config.load_kube_config(files, context, client_configuration=configuration)
        contexts, active = config.list_kube_config_contexts(files)
        if context:
            active = next((c for c in contexts if c["name"] == context), active)
        namespace = (active or {}).get("context", {}).get("namespace")
    except config.ConfigException:
        if context or kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            raise
        config.load_incluster_config(client_configuration=configuration)
        path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
        if os.path.exists(path):
            namespace = Path(path).read_text().strip()
    configuration.retries = False
    return client.ApiClient(configuration), namespace, configuration.host


def read_kubernetes(
    context: str | None,
    namespace: str | None,
    deadline: Deadline,
    probe_from_pod: bool = False,
    *,
    kubeconfig: str | None = None,
    all_namespaces: bool = False,
) -> KubeRead:
    from kubernetes import client

    try:
        api, context_namespace, server = api_client(context, kubeconfig)
    except Exception as error:  # no kubeconfig, unreadable file, no in-cluster account
        target = context or kubeconfig or "kubeconfig"
        probe = Probe("kubernetes", target, False, "error", describe(error))
        return KubeRead([], {}, [probe], {}, None if all_namespaces else namespace or "default", "")
    if not all_namespaces:
        namespace = namespace or context_namespace or "default"
    read = KubeRead([], {}, [], {}, None if all_namespaces else namespace, server)
    with api:
        try:
            _list(
                client, api, read, "CoreV1Api", *namespaced("list_namespaced_pod", read), deadline
            )
        except Exception as error:
            read.probes.append(Probe("kubernetes", server, False, _kind(error), describe(error)))
            return read
        read.probes.append(Probe("kubernetes", server, True))
        for api_class, method in NAMESPACED[1:]:
            _try(
                read,
                method,
                lambda a=api_class, m=method: _list(
                    client, api, read, a, *namespaced(m, read), deadline
                ),
            )
        for api_class, method in CLUSTER:
            _try(
                read,
                method,
                lambda a=api_class, m=method: _list(client, api, read, a, m, (), deadline),
            )
        for kind, plural in KUBERAY_PLURALS.items():
            _try(read, plural, lambda k=kind, p=plural: _kuberay(client, api, read, deadline, k, p))
        _try(read, "logs", lambda: _logs(client, api, read, deadline))
        if probe_from_pod:
            _try(read, "probe-from-pod", lambda: _probe_from_pods(client, api, read, deadline))
    return read


def namespaced(method: str, read: KubeRead) -> tuple[str, tuple]:
    """A namespaced list method and its arguments: for the read's namespace, or the method
    that lists every namespace (`list_namespaced_pod` -> `list_pod_for_all_namespaces`)."""
    if read.namespace is None:
        return method.replace("list_namespaced_", "list_", 1) + "_for_all_namespaces", ()
    return method, (read.namespace,)


def _kind(error: BaseException) -> str:
    status = getattr(error, "status", None)
    if status in (401, 403):
        return "auth"
    return "http" if status else failure_kind(error)


def _try(read: KubeRead, what: str, call) -> None:
    if read.errors.get("deadline"):
        return
    try:
        call()
    except Exception as error:  # forbidden, not served, timed out: recorded, never fatal
        read.errors[what] = describe(error)
        if _kind(error) == "timeout":
            read.errors["deadline"] = "stopped reading after a timeout"


def _timeout(deadline: Deadline) -> tuple[float, float]:
    return (deadline.timeout(), deadline.timeout())


def _add_list(read: KubeRead, data: dict, kind: str) -> None:
    for item in data.get("items") or []:
        item.setdefault("kind", kind)
        if item.get("kind") == "Secret":
            read.secret_values |= secret_values([item])
            item["data"] = {key: REDACTED for key in item.get("data") or {}}
            item.pop("stringData", None)
        metadata = item.get("metadata") or {}
        metadata.pop("managedFields", None)
        for annotation in DROPPED_ANNOTATIONS:
            (metadata.get("annotations") or {}).pop(annotation, None)
        read.objects.append(item)


def _list(client, api, read, api_class, method, args: tuple, deadline) -> None:
    call = getattr(getattr(client, api_class)(api), method)
    response = call(*args, _preload_content=False, _request_timeout=_timeout(deadline))
    data = json.loads(response.data)
    _add_list(read, data, (data.get("kind") or "").removesuffix("List"))


def _kuberay(client, api, read, deadline, kind: str, plural: str) -> None:
    custom = client.CustomObjectsApi(api)
    if read.namespace is None:
        call, scope = custom.list_cluster_custom_object, ()
    else:
        call, scope = custom.list_namespaced_custom_object, (read.namespace,)
    try:
        response = call(
            "ray.io",
            "v1",
            *scope,
            plural,
            _preload_content=False,
            _request_timeout=_timeout(deadline),
        )
    except client.ApiException as error:
        if error.status == 404:  # this KubeRay CRD is not installed: no such kind here
            return
        raise
    _add_list(read, json.loads(response.data), kind)


def _failing(status: dict) -> bool:
    """Restarted, crash-looping, or exited with an error and not restarted (a Job's pod under
    restartPolicy Never, such as a RayJob's submitter)."""
    state = status.get("state") or {}
    waiting = state.get("waiting") or {}
    exit_code = (state.get("terminated") or {}).get("exitCode")
    return (
        status.get("restartCount", 0) > 0
        or waiting.get("reason") in ("CrashLoopBackOff", "Error")
        or exit_code not in (None, 0)
    )


def _logs(client, api, read, deadline) -> None:
    core = client.CoreV1Api(api)
    for pod in [o for o in read.objects if o.get("kind") == "Pod"]:
        metadata = pod.get("metadata") or {}
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if not _failing(status) or deadline.expired:
                continue
            text = core.read_namespaced_pod_log(
                metadata.get("name"),
                metadata.get("namespace"),
                container=status.get("name"),
                tail_lines=LOG_LINES,
                previous=status.get("restartCount", 0) > 0,
                _request_timeout=_timeout(deadline),
            )
            key = f"Pod/{metadata.get('namespace')}/{metadata.get('name')}/{status.get('name')}"
            read.logs[key] = text


def _running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def probe_pods(objects: list[dict]) -> list[tuple[dict, dict, str]]:
    """(pod, container, output dir) for one running Ray worker pod and one API pod."""
    chosen: dict[str, tuple[dict, dict, str]] = {}
    config = {
        (c.get("metadata") or {}).get("name"): (c.get("data") or {})
        for c in objects
        if c.get("kind") == "ConfigMap"
    }
    for pod in filter(_running, (o for o in objects if o.get("kind") == "Pod")):
        labels = (pod.get("metadata") or {}).get("labels") or {}
        for container in (pod.get("spec") or {}).get("containers") or []:
            output = _env_value(container, config, "MOCHI_OUTPUT_DIR")
            if not output:
                continue
            text = (
                " ".join(container.get("command") or [])
                + " "
                + " ".join(container.get("args") or [])
            )
            role = (
                "worker"
                if labels.get("ray.io/node-type") == "worker"
                or ("ray start" in text and "--head" not in text)
                else "api"
                if "api" in text or labels.get("app.kubernetes.io/component") == "api"
                else None
            )
            if role and role not in chosen:
                chosen[role] = (pod, container, output)
    return list(chosen.values())


def _env_value(container: dict, config: dict, name: str) -> str | None:
    for item in container.get("env") or []:
        if item.get("name") == name:
            if "value" in item:
                return item["value"]
            ref = (item.get("valueFrom") or {}).get("configMapKeyRef") or {}
            return (config.get(ref.get("name")) or {}).get(ref.get("key"))
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef") or {}
        value = (config.get(ref.get("name")) or {}).get(name)
        if value:
            return value
    return None


def _probe_from_pods(client, api, read, deadline) -> None:
    from kubernetes.stream import stream

    core = client.CoreV1Api(api)
    for pod, container, output in probe_pods(read.objects):
        metadata = pod["metadata"]
        resource = f"Pod/{metadata.get('namespace')}/{metadata.get('name')}"
        command = ["python3", "-c", POD_SCRIPT, output]
        try:
            answer = stream(
                core.connect_get_namespaced_pod_exec,
                metadata["name"],
                metadata["namespace"],
                container=container.get("name"),
                command=command,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _request_timeout=_timeout(deadline),
            )
        except Exception as error:
            read.probes.append(
                Probe(
                    "output",
                    output,
                    False,
                    _kind(error),
                    f"exec {shlex.join(command[:2])}: {describe(error)}",
                    resource,
                    resource,
                )
            )
            continue
        read.probes.append(parse_pod_answer(output, str(answer), resource, resource))
