"""Every rendered object validates against the Kubernetes OpenAPI schema (and KubeRay's CRD)."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from infra import render
from infra.manifests import find
from infra.render import STACKS

KUBERNETES_VERSION = "1.30.0"
CRD = Path(__file__).resolve().parents[3] / "shared" / "data" / "kuberay-v1.7.0-raycluster-crd.yaml"


@pytest.mark.parametrize("stack", STACKS)
def test_every_core_object_validates_against_kubernetes_1_30(objects, stack):
    checked = 0
    for obj in objects[stack]:
        if obj["kind"] == "RayCluster":
            continue
        kubernetes_validate.validate(render.canonical(obj), KUBERNETES_VERSION, strict=True)
        checked += 1
    assert checked == len(objects[stack]) - 1


@pytest.fixture(scope="module")
def raycluster_schema() -> dict:
    if not CRD.exists():
        pytest.skip(f"KubeRay RayCluster CRD not found at {CRD}: RayCluster schema not checked")
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return version["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("stack", STACKS)
def test_raycluster_validates_against_kuberay_1_7_crd(objects, stack, raycluster_schema):
    (cluster,) = find(objects[stack], "RayCluster")
    jsonschema.validate(cluster, raycluster_schema)
    _reject_unknown_fields(cluster["spec"], raycluster_schema["properties"]["spec"], "spec")


def _reject_unknown_fields(value, schema: dict, path: str) -> None:
    """The API server prunes fields the structural schema lacks: treat them as errors."""
    if isinstance(value, dict) and "properties" in schema:
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        for key, item in value.items():
            assert key in schema["properties"], f"{path}.{key} is not in the RayCluster schema"
            _reject_unknown_fields(item, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _reject_unknown_fields(item, schema["items"], f"{path}[{index}]")
