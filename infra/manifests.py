"""Walking rendered objects: pod templates, containers, lookups (used by the policy and tests)."""

from __future__ import annotations

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")


def pod_specs(obj: dict) -> list[tuple[str, dict]]:
    """(where, pod spec) of every pod template in a workload or RayCluster."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return [("spec", spec)]
    if kind == "CronJob":
        return [("spec.jobTemplate", spec["jobTemplate"]["spec"]["template"]["spec"])]
    if kind in WORKLOAD_KINDS:
        return [("spec.template", (spec.get("template") or {}).get("spec") or {})]
    if kind == "RayCluster":
        pods = [("headGroupSpec", spec["headGroupSpec"]["template"]["spec"])]
        for group in spec.get("workerGroupSpecs") or []:
            pods.append((f"workerGroup {group.get('groupName')}", group["template"]["spec"]))
        return pods
    return []


def containers(pod: dict) -> list[dict]:
    return list(pod.get("initContainers") or []) + list(pod.get("containers") or [])


def find(objects: list[dict], kind: str, name: str | None = None) -> list[dict]:
    return [
        obj
        for obj in objects
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]


def one(objects: list[dict], kind: str, name: str) -> dict:
    (found,) = find(objects, kind, name)
    return found


def all_containers(objects: list[dict]) -> list[tuple[str, dict, dict]]:
    """(object and where, pod spec, container) for every container of every object."""
    return [
        (f"{obj['kind']}/{obj['metadata']['name']} {where}", pod, container)
        for obj in objects
        for where, pod in pod_specs(obj)
        for container in containers(pod)
    ]
