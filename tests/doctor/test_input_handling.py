"""Input as users hand it over: Helm charts and kustomizations not yet rendered, standard
input, folders with no Kubernetes object, kinds no check reads, values Kubernetes refuses,
and a check that raises. Through the real command line."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree

import pytest

from doctor.checks.input_values import CHECKED_KINDS
from doctor.cli import main
from doctor.inventory import WORKLOAD_KINDS
from doctor.kuberay import KUBERAY_KINDS
from doctor.registry import REGISTRY, Check, Hit
from infra import config, render
from service import quantities

DOCTOR_SOURCE = Path(__file__).resolve().parents[2] / "doctor"

# What `helm create` writes, trimmed: not YAML until rendered.
HELM_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "mychart.fullname" . }}
  labels:
    {{- include "mychart.labels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  template:
    spec:
      containers:
        - name: {{ .Chart.Name }}
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default "latest" }}"
"""

CHART = "apiVersion: v2\nname: mychart\nversion: 0.1.0\nappVersion: 1.16.0\n"
VALUES = "replicaCount: 1\nimage:\n  repository: nginx\n  tag: ''\nautoscaling:\n  enabled: false\n"

RAYCLUSTER = """\
apiVersion: ray.io/v1
kind: RayCluster
metadata:
  name: raycluster-kuberay
  namespace: ray
spec:
  rayVersion: "2.46.0"
  headGroupSpec:
    rayStartParams: {}
    template:
      spec:
        containers:
          - name: ray-head
            image: rayproject/ray:2.46.0
            resources:
              limits: {cpu: "1", memory: {head_memory}}
              requests: {cpu: 500m, memory: 2G}
  workerGroupSpecs:
    - groupName: workergroup
      replicas: {replicas}
      minReplicas: 1
      maxReplicas: 5
      rayStartParams: {}
      template:
        spec:
          containers:
            - name: ray-worker
              image: rayproject/ray:2.46.0
              resources:
                limits: {cpu: "1", memory: {worker_memory}}
                requests: {cpu: 5e-1, memory: 1G}
"""


def raycluster(head_memory="2G", worker_memory="1G", replicas="1") -> str:
    return (
        RAYCLUSTER.replace("{head_memory}", head_memory)
        .replace("{worker_memory}", worker_memory)
        .replace("{replicas}", replicas)
    )


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def diagnose_json(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(["diagnose", *argv, "--format", "json", "--fail-on", "never"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def findings_of(report: dict, code: str) -> list[dict]:
    return [f for f in report["findings"] if f["code"] == code]


# -- templates, kustomizations, invalid files ---------------------------------------------------


def test_helm_chart_beside_its_rendered_output_is_noted_and_the_rest_checked(tmp_path, capsys):
    chart = write(
        tmp_path,
        {
            "mychart/Chart.yaml": CHART,
            "mychart/values.yaml": VALUES,
            "mychart/templates/deployment.yaml": HELM_DEPLOYMENT,
            "rendered/raycluster.yaml": raycluster(worker_memory="64GB"),
        },
    )
    code, report, err = diagnose_json(capsys, "--manifests", str(chart))
    assert code == 0
    skipped = {Path(s["path"]).name: s["reason"] for s in report["summary"]["skipped"]}
    assert skipped["deployment.yaml"] == (
        "is a template: render it first (`helm template … | doctor diagnose --manifests -`)"
    )
    assert skipped["Chart.yaml"].startswith("is a Helm chart: render it first (`helm template ")
    assert skipped["values.yaml"] == "holds no Kubernetes object (apiVersion and kind)"
    [checked] = findings_of(report, "CONF001")  # the rendered file was read and checked
    assert checked["resource"] == "RayCluster/ray/raycluster-kuberay"


def test_text_report_and_stderr_carry_the_notes(tmp_path, capsys):
    write(tmp_path, {"templates/deployment.yaml": HELM_DEPLOYMENT, "ray.yaml": raycluster()})
    main(["diagnose", "--manifests", str(tmp_path), "--fail-on", "never"])
    out, err = capsys.readouterr()
    note = f"{tmp_path / 'templates' / 'deployment.yaml'} is a template: render it first"
    assert f"skipped: {note}" in out
    assert out.index("skipped: ") < out.index(" errors, ")  # before the summary line
    assert f"doctor: skipped: {note}" in err


def test_only_templates_is_exit_2_naming_each_file(tmp_path, capsys):
    write(tmp_path, {"templates/deployment.yaml": HELM_DEPLOYMENT})
    assert main(["diagnose", "--manifests", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"doctor: error: no Kubernetes objects in {tmp_path}" in err
    assert "deployment.yaml is a template: render it first" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["kustomization.yaml", "kustomization.yml", "Kustomization"])
def test_kustomization_says_to_build_it(tmp_path, capsys, name):
    kustomization = "resources:\n  - raycluster.yaml\nnamespace: ray\n"
    write(tmp_path, {f"overlay/{name}": kustomization, "overlay/raycluster.yaml": raycluster()})
    code, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    assert code == 0
    assert report["summary"]["skipped"] == [
        {
            "path": str(tmp_path / "overlay" / name),
            "reason": f"is a kustomization: build it first (`kustomize build {tmp_path / 'overlay'}"
            " | doctor diagnose --manifests -`)",
        }
    ]


def test_an_invalid_yaml_file_is_a_note_not_the_end_of_the_run(tmp_path, capsys):
    write(tmp_path, {"broken.yaml": "kind: [unclosed\n", "ray.yaml": raycluster("64GB")})
    code, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    assert code == 0
    [skipped] = report["summary"]["skipped"]
    assert skipped["path"].endswith("broken.yaml")
    assert skipped["reason"].startswith("is not valid YAML: ")
    assert [f["resource"] for f in findings_of(report, "CONF001")] == [
        "RayCluster/ray/raycluster-kuberay"
    ]


def test_a_rendered_alert_rule_with_braces_is_read_not_skipped(tmp_path, capsys):
    rules = """\
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: prometheus-rules, namespace: monitoring}
    data:
      alerts.yaml: |
        - alert: RayHeadDown
          annotations:
            summary: "Ray head {{ $labels.pod }} is down"
    """
    write(tmp_path, {"rules.yaml": rules})
    code, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    assert code == 0 and report["summary"]["skipped"] == []


def test_junit_and_sarif_carry_the_notes(tmp_path, capsys):
    write(tmp_path, {"templates/svc.yaml": HELM_DEPLOYMENT, "ray.yaml": raycluster()})
    junit = tmp_path / "doctor.xml"
    main(["diagnose", "--manifests", str(tmp_path), "--format", "junit", "--output", str(junit)])
    suite = ElementTree.parse(junit).getroot()
    [case] = [c for c in suite if c.get("classname") == "doctor.input"]
    assert "svc.yaml is a template" in case.find("skipped").get("message")
    assert int(suite.get("tests")) == len(list(suite))
    assert suite.get("skipped") == str(len(suite.findall("*/skipped")))
    main(["diagnose", "--manifests", str(tmp_path), "--format", "sarif"])
    sarif = json.loads(capsys.readouterr().out)
    [notification] = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert "svc.yaml is a template: render it first" in notification["message"]["text"]


# -- standard input and several paths ----------------------------------------------------------


def test_helm_template_piped_to_standard_input(tmp_path):
    rendered = "---\n# Source: mychart/templates/raycluster.yaml\n" + raycluster("2G", "64GB")
    doctor = Path(sys.executable).parent / "doctor"
    command = [str(doctor)] if doctor.exists() else [sys.executable, "-m", "doctor.cli"]
    done = subprocess.run(
        [*command, "diagnose", "--manifests", "-", "--format", "json"],
        input=rendered,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    [finding] = findings_of(json.loads(done.stdout), "CONF001")
    assert finding["resource"] == "RayCluster/ray/raycluster-kuberay"
    assert "'64GB' is not a Kubernetes quantity (in <stdin>)" in finding["message"]


def test_kubectl_json_list_on_standard_input_as_snapshot(monkeypatch, capsys):
    pods = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web-0", "namespace": "shop"},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
                "status": {"phase": "Running"},
            },
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
        ],
    }
    monkeypatch.setattr(sys, "stdin", io.StringIO(json.dumps(pods)))
    code, report, _ = diagnose_json(capsys, "--snapshot", "-")
    assert code == 0
    assert report["summary"]["not_checked"] == {"Widget": 1}


def test_standard_input_is_read_once(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(raycluster()))
    assert main(["diagnose", "--manifests", "-", "--snapshot", "-"]) == 2
    assert "standard input (-) can be read once" in capsys.readouterr().err


def test_manifests_may_be_repeated_and_take_several_paths(tmp_path, capsys):
    write(tmp_path, {"a/ray.yaml": raycluster(), "b/widget.yaml": WIDGETS, "c/one.yaml": WIDGETS})
    _, report, _ = diagnose_json(
        capsys,
        "--manifests",
        str(tmp_path / "a"),
        "--manifests",
        *map(str, [tmp_path / "b", tmp_path / "c"]),
    )
    assert report["summary"]["not_checked"] == {"CustomThing": 4, "Foo": 2}


# -- nothing to read, kinds not checked ----------------------------------------------------------

WIDGETS = """\
apiVersion: example.com/v1
kind: CustomThing
metadata: {name: one}
---
apiVersion: example.com/v1
kind: CustomThing
metadata: {name: two}
---
apiVersion: example.com/v1
kind: Foo
metadata: {name: foo}
"""

COMPOSE = """\
services:
  redis:
    image: redis:7.2
    ports: ["6379:6379"]
"""


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"README.md": "# my app\n", "main.py": "print('hi')\n"},
        {"values.yaml": VALUES, "docker-compose.yml": COMPOSE},
    ],
    ids=["empty folder", "unknown suffixes", "not Kubernetes YAML"],
)
def test_no_kubernetes_object_is_exit_2(tmp_path, capsys, files):
    write(tmp_path, files)
    assert main(["diagnose", "--manifests", str(tmp_path)]) == 2
    assert f"doctor: error: no Kubernetes objects in {tmp_path}" in capsys.readouterr().err


def test_kinds_no_check_reads_are_counted(tmp_path, capsys):
    write(tmp_path, {"widgets.yaml": WIDGETS, "ray.yaml": raycluster()})
    code, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    assert code == 0 and report["summary"]["not_checked"] == {"CustomThing": 2, "Foo": 1}
    main(["diagnose", "--manifests", str(tmp_path), "--fail-on", "never"])
    out = capsys.readouterr().out
    assert "not checked: 3 object(s) of kinds CustomThing, Foo (no check reads them)" in out


def test_only_unchecked_kinds_is_not_exit_2(tmp_path, capsys):
    write(tmp_path, {"widgets.yaml": WIDGETS})
    code, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    assert code == 0 and report["findings"] == []
    assert report["summary"]["not_checked"] == {"CustomThing": 2, "Foo": 1}


def test_every_kind_the_doctor_reads_is_in_checked_kinds():
    read = set()
    for source in DOCTOR_SOURCE.rglob("*.py"):
        text = source.read_text()
        read |= set(re.findall(r'\.(?:of|in_namespace)\("([A-Z]\w+)"', text))
        read |= set(re.findall(r'(?:inventory|self)\.get\("([A-Z]\w+)", ', text))
    assert read - {"List"} <= CHECKED_KINDS
    assert set(WORKLOAD_KINDS) | set(KUBERAY_KINDS) <= CHECKED_KINDS


# -- values Kubernetes refuses: CONF001 ----------------------------------------------------------


def test_memory_64gb_in_a_worker_group_is_conf001_naming_file_object_and_field(tmp_path, capsys):
    write(tmp_path, {"ray.yaml": raycluster(worker_memory="64GB")})
    code, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    assert code == 0
    [finding] = findings_of(report, "CONF001")
    field = "spec.workerGroupSpecs[0].template.spec.containers[0].resources.limits.memory"
    assert finding["resource"] == "RayCluster/ray/raycluster-kuberay"
    assert finding["severity"] == "error" and finding["category"] == "configuration"
    assert finding["message"].startswith(
        f"{field}: '64GB' is not a Kubernetes quantity (in {tmp_path / 'ray.yaml'}): "
        "Kubernetes has no B suffix, write 64G (powers of 10) or 64Gi"
    )
    assert finding["evidence"] == f"{field}: 64GB"


@pytest.mark.parametrize("memory", ["1Ei", "500m", "1e3", "64Gi", "64G", "1073741824"])
def test_valid_quantities_are_not_conf001(tmp_path, capsys, memory):
    write(tmp_path, {"ray.yaml": raycluster(head_memory=memory)})
    _, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    assert findings_of(report, "CONF001") == []


@pytest.mark.parametrize("replicas", ['"{{ .Values.worker.replicas }}"', "$INITIAL_WORKERS"])
def test_templated_replicas_that_survived_is_a_conf001_warning_not_a_crash(
    tmp_path, capsys, replicas
):
    write(tmp_path, {"ray.yaml": raycluster(replicas=replicas)})
    code, report, err = diagnose_json(capsys, "--manifests", str(tmp_path))
    assert code == 0 and "internal error" not in err
    [finding] = findings_of(report, "CONF001")
    assert finding["severity"] == "warning"  # rendering decides the value, not this file
    value = replicas.strip('"')
    assert finding["message"].startswith(
        f"spec.workerGroupSpecs[0].replicas: '{value}' is not an integer"
    )
    assert "an unrendered template value" in finding["message"]
    assert findings_of(report, "CONF002") == []


def test_a_count_written_as_a_string_is_a_conf001_error(tmp_path, capsys):
    write(tmp_path, {"ray.yaml": raycluster(replicas='"2"')})
    _, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    [finding] = findings_of(report, "CONF001")
    assert finding["severity"] == "error"
    assert finding["evidence"] == "spec.workerGroupSpecs[0].replicas: 2"


QUOTA_AND_DEPLOYMENT = """\
apiVersion: v1
kind: ResourceQuota
metadata: {name: compute, namespace: shop}
spec:
  hard: {requests.cpu: "4", requests.memory: 16GB, limits.memory: 32Gi}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  strategy: {rollingUpdate: {maxSurge: "{{ .Values.surge }}"}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.27
          resources: {requests: {cpu: "2", memory: 12Gi}, limits: {memory: 12Gi}}
"""


def test_quota_with_an_invalid_hard_value_checks_the_others(tmp_path, capsys):
    write(tmp_path, {"shop.yaml": QUOTA_AND_DEPLOYMENT})
    _, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    conf = {f["resource"]: f["evidence"] for f in findings_of(report, "CONF001")}
    assert conf == {
        "ResourceQuota/shop/compute": "spec.hard.requests.memory: 16GB",
        "Deployment/shop/web": "spec.strategy.rollingUpdate.maxSurge: {{ .Values.surge }}",
    }
    quota = {f["evidence"] for f in findings_of(report, "QUOTA001")}
    # cpu (6 > 4) and limits.memory (36Gi > 32Gi) still checked; requests.memory skipped.
    assert quota == {
        "hard.requests.cpu: 4; requested 6",
        "hard.limits.memory: 32Gi; requested 36.0Gi",
    }
    assert findings_of(report, "CONF002") == []


# -- a check that raises: CONF002 ----------------------------------------------------------------


def test_a_check_that_raises_is_conf002_and_the_report_goes_on(tmp_path, capsys, monkeypatch):
    def breaks_on_the_worker_group(inventory):
        for workload in inventory.workloads:
            if workload.group == "workergroup":
                limits = workload.containers[0]["resources"]["limits"]
                yield Hit(workload.resource, "fine", limits["gpu"])
        yield from ()

    broken = Check("ZZZ999", "error", "memory", "test check", "none", breaks_on_the_worker_group)
    monkeypatch.setitem(REGISTRY, "ZZZ999", broken)
    write(tmp_path, {"ray.yaml": raycluster(worker_memory="64GB")})
    code, report, _ = diagnose_json(capsys, "--manifests", str(tmp_path))
    assert code == 0
    [finding] = findings_of(report, "CONF002")
    assert finding["severity"] == "warning"
    assert finding["resource"] == "RayCluster/ray/raycluster-kuberay"
    assert finding["message"].startswith(
        "check ZZZ999 could not run on RayCluster/ray/raycluster-kuberay: KeyError: 'gpu'"
    )
    assert finding["evidence"].startswith("KeyError: 'gpu' (")
    assert findings_of(report, "CONF001"), "the other checks still ran"


# -- one quantity parser -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("64Gi", 64.0),
        ("64G", 64e9 / 2**30),
        ("1Ei", 2.0**30),
        ("500m", 0.5 / 2**30),
        ("1e3", 1e3 / 2**30),
        (1073741824, 1.0),
    ],
)
def test_gib_parses_every_kubernetes_form(value, expected):
    assert quantities.gib(value) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value", ["64GB", "1K", "1_000", "NaN", "1e3Gi", " 4Gi", "", True, "{{ x }}"]
)
def test_invalid_quantities_raise_one_error_naming_the_value(value):
    with pytest.raises(quantities.InvalidQuantity, match=re.escape(repr(str(value)))):
        quantities.parse(value)


def test_cores():
    assert quantities.cores("500m") == 0.5 and quantities.cores(2) == 2.0
    assert quantities.cores("5e-1") == 0.5


def test_infra_config_rejects_64gb_and_accepts_an_exponent():
    values = render.stack_config("dev")
    values["mochi:apiMemory"] = "64GB"
    with pytest.raises(config.InvalidConfig) as raised:
        config.load(values.get)
    [problem] = [p for p in raised.value.problems if p.key == "mochi:apiMemory"]
    assert problem.message == "is not a Kubernetes quantity such as 512Mi or 64Gi"
    values = render.stack_config("dev")
    values["mochi:apiCpu"] = "5e-1"
    assert config.load(values.get).api_cpu == "5e-1"
