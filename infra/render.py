"""`python -m infra render --stack STACK --out DIR`: the program's objects as YAML, offline.

It runs the same program under Pulumi's mocks (no CLI, no cluster) with the stack's config
(Pulumi.yaml defaults overlaid by Pulumi.<stack>.yaml, as the CLI does) and writes every
Kubernetes object it registers. Generated secrets get fresh random values here, so the directory
is `kubectl apply -f DIR`-ready; it is written with owner-only permissions. `--config KEY=VALUE`
(repeatable, as `pulumi up --config`) sets a value the stack file leaves to the user.
"""

from __future__ import annotations

import argparse
import os
import secrets
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pulumi
import yaml
from pulumi.runtime.mocks import MockMonitor

from infra.config import PROJECT, InvalidConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
STACKS = ("dev", "prod")
K8S_PREFIX = "kubernetes:"
HELM_RELEASE = "kubernetes:helm.sh/v3:Release"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
# Pulumi's wire marker for a secret value: {SECRET_SIG: SECRET_VALUE, "value": ...}.
SECRET_SIG = "4dabf18193072939515e22adb298388d"
KIND_ORDER = [
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "StatefulSet",
    "RayCluster",
    "Deployment",
    "Job",
    "PodDisruptionBudget",
    "Ingress",
    "NetworkPolicy",
]


@dataclass(frozen=True)
class Registration:
    type: str
    name: str
    inputs: dict
    protect: bool = False
    retain_on_delete: bool = False
    # The URNs of the Pulumi aliases given to it (its former names), as the engine reads them.
    aliases: tuple[str, ...] = ()


def stack_config(stack: str, root: Path | None = None) -> dict[str, str]:
    """The config values `pulumi up` hands the program for STACK, as strings."""
    root = root or REPO_ROOT
    project = yaml.safe_load((root / "Pulumi.yaml").read_text())
    values: dict[str, object] = {}
    for key, declaration in (project.get("config") or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if "default" in declaration:
            values[full_key] = declaration["default"]
    stack_file = root / f"Pulumi.{stack}.yaml"
    if not stack_file.exists():
        raise FileNotFoundError(f"no stack file {stack_file}")
    values.update((yaml.safe_load(stack_file.read_text()) or {}).get("config") or {})
    return {key: _config_string(value) for key, value in values.items()}


def _config_string(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def with_overrides(config: dict[str, str], overrides: Mapping[str, object]) -> dict[str, str]:
    """CONFIG with OVERRIDES set; a key without a namespace is the project's, as in Pulumi."""
    merged = dict(config)
    for key, value in overrides.items():
        merged[key if ":" in key else f"{PROJECT}:{key}"] = _config_string(value)
    return merged


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo inputs back as outputs; generate passwords; remember every registration."""

    def __init__(self):
        self.registrations: list[Registration] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.registrations.append(Registration(args.typ, args.name, plain(args.inputs)))
        outputs = dict(args.inputs)
        if args.typ == RANDOM_PASSWORD:
            alphabet = string.ascii_letters + string.digits
            length = int(args.inputs.get("length", 32))
            outputs["result"] = "".join(secrets.choice(alphabet) for _ in range(length))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}, None


class OptionsMonitor(MockMonitor):
    """The mock engine, also keeping the options the SDK sends with each resource, which
    `Mocks.new_resource` never sees: protect, retainOnDelete and aliases, by (type, name)."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.options: dict[tuple[str, str], dict] = {}

    def RegisterResource(self, request):
        self.options[(request.type, request.name)] = {
            "protect": request.protect,
            "retain_on_delete": request.retainOnDelete,
            "aliases": tuple(self._alias_urns(request)),
        }
        return super().RegisterResource(request)

    def _alias_urns(self, request):
        """Aliases to another name or parent; the provider's own (another apiVersion) left out."""
        for alias in request.aliases:
            spec = alias.spec
            if not (spec.name or spec.parentUrn or spec.noParent):
                continue
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            yield self.make_urn(parent, spec.type or request.type, spec.name or request.name)


def run_program(config: dict[str, str], stack: str) -> list[Registration]:
    """Run the Pulumi program under mocks; every resource it registers, in order."""
    from infra import program

    mocks = RecordingMocks()
    monitor = OptionsMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config)

    @pulumi.runtime.test
    def run():
        outputs = program.build(program.load_config())
        return pulumi.Output.all(*outputs.values())

    run()
    return [replace(r, **monitor.options[(r.type, r.name)]) for r in mocks.registrations]


def run_stack(stack: str, **overrides: object) -> list[Registration]:
    """The registrations of STACK, with config keys (`mochi:...`) overridden."""
    return run_program(with_overrides(stack_config(stack), overrides), stack)


def plain(value):
    """Wire values back to YAML-able ones: secrets unwrapped, whole floats made ints."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return plain(value.get("value"))
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def kubernetes_objects(registrations: list[Registration]) -> list[dict]:
    """The Kubernetes objects among the registrations, in apply order."""
    objects = [
        r.inputs
        for r in registrations
        if r.type.startswith(K8S_PREFIX) and r.type != HELM_RELEASE and "kind" in r.inputs
    ]

    def order(obj: dict):
        kind = obj["kind"]
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        return rank, obj["metadata"]["name"]

    return sorted(objects, key=order)


def helm_releases(registrations: list[Registration]) -> list[dict]:
    return [r.inputs for r in registrations if r.type == HELM_RELEASE]


def canonical(obj: dict) -> dict:
    """Stable output: apiVersion, kind, metadata first; every mapping's keys sorted."""

    def sort(value):
        if isinstance(value, dict):
            return {key: sort(value[key]) for key in sorted(value)}
        if isinstance(value, list):
            return [sort(item) for item in value]
        return value

    head = ["apiVersion", "kind", "metadata"]
    ordered = {key: sort(obj[key]) for key in head if key in obj}
    ordered.update({key: sort(obj[key]) for key in sorted(obj) if key not in head})
    return ordered


def file_name(index: int, obj: dict) -> str:
    return f"{index:02d}-{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def write(objects: list[dict], releases: list[dict], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    for stale in out.glob("*.yaml"):
        stale.unlink()
    paths = []
    for index, obj in enumerate(objects):
        path = out / file_name(index, obj)
        path.write_text(yaml.safe_dump(canonical(obj), sort_keys=False))
        os.chmod(path, 0o600)
        paths.append(path)
    notes = out / "NOTES.txt"
    if releases:
        lines = ["Helm releases the program installs (not Kubernetes objects; install first):"]
        for release in releases:
            lines.append(
                f"  helm install {release['name']} {release['chart']} "
                f"--repo {release['repositoryOpts']['repo']} --version {release['version']} "
                f"--namespace {release['namespace']} --create-namespace"
            )
        notes.write_text("\n".join(lines) + "\n")
    elif notes.exists():
        notes.unlink()
    return paths


def render(
    stack: str,
    out: Path,
    root: Path | None = None,
    overrides: Mapping[str, object] | None = None,
) -> list[Path]:
    config = with_overrides(stack_config(stack, root), overrides or {})
    registrations = run_program(config, stack)
    return write(kubernetes_objects(registrations), helm_releases(registrations), out)


def _setting(text: str) -> tuple[str, str]:
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. apiImage=ghcr.io/o/a:1)")
    return key, value


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra")
    commands = parser.add_subparsers(dest="command", required=True)
    render_command = commands.add_parser("render", help="write the stack's objects as YAML")
    render_command.add_argument("--stack", required=True, help="dev, prod, or another stack")
    render_command.add_argument("--out", required=True, type=Path, help="output directory")
    render_command.add_argument(
        "-c",
        "--config",
        action="append",
        type=_setting,
        default=[],
        metavar="KEY=VALUE",
        help="set a config value over the stack file (repeatable; `mochi:` is implied)",
    )
    args = parser.parse_args(argv)
    try:
        paths = render(args.stack, args.out, overrides=dict(args.config))
    except InvalidConfig as error:
        print(error, file=sys.stderr)
        return 1
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} objects for stack {args.stack} to {args.out}")
    if (args.out / "NOTES.txt").exists():
        print((args.out / "NOTES.txt").read_text(), end="")
    return 0
