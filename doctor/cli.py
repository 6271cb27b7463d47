"""`doctor diagnose | snapshot | explain | checks`. Exit codes: 0 nothing at or above --fail-on,
1 findings at or above it, 2 the doctor could not run (no Kubernetes object in the input, a
missing path). A file it cannot check (a template, invalid YAML) is a note, not the end of the run.

With no --manifests and no --snapshot, `diagnose` reads the running system: Kubernetes (kubeconfig,
--context, --namespace), Ray, Redis and the API at the addresses given, or those `mochi local`
wrote (--local). Each probe has its own timeout and the read ends within --timeout; a component
that does not answer is a finding, not a failure of the doctor."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from doctor.diagnose import baseline_document, diagnose, load_baseline
from doctor.finding import severity_rank
from doctor.inventory import Inventory
from doctor.registry import REGISTRY, all_checks
from doctor.report import input_notes, to_json, to_junit, to_sarif, to_text
from doctor.sources import InputError, load_manifests, load_snapshot
from doctor.sources.files import STDIN, SkippedFile
from doctor.sources.live import LiveOptions, options_from_local, read_live
from doctor.sources.record import write_snapshot

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"
EXIT_OK, EXIT_FINDINGS, EXIT_BROKEN = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="doctor", description="Find what breaks a Mochi/Ray/Redis deployment, and say why."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    diag = commands.add_parser("diagnose", help="check manifests or a cluster snapshot")
    diag.add_argument(
        "--manifests",
        nargs="+",
        action="extend",
        metavar="PATH",
        default=[],
        help="YAML/JSON files or folders (with Dockerfiles, requirements files); - is standard "
        "input (`helm template … | doctor diagnose --manifests -`); may be repeated",
    )
    diag.add_argument(
        "--snapshot",
        metavar="PATH",
        help="kubectl get -o yaml|json output, or a folder of it; - is standard input",
    )
    add_live_options(diag)
    diag.add_argument("--format", choices=("text", "json", "junit", "sarif"), default="text")
    diag.add_argument("--output", metavar="FILE", help="write the report here, not stdout")
    diag.add_argument("--fail-on", choices=("error", "warning", "info", "never"), default="error")
    diag.add_argument(
        "--baseline", metavar="FILE", help="accepted findings (fingerprints, reasons)"
    )
    diag.add_argument(
        "--write-baseline",
        metavar="FILE",
        help="write every current finding to FILE as accepted, then exit 0",
    )

    snapshot = commands.add_parser(
        "snapshot", help="record what a live read sees (secrets redacted) for --snapshot"
    )
    snapshot.add_argument("--out", metavar="DIR", required=True, help="folder to write")
    add_live_options(snapshot)

    explain = commands.add_parser("explain", help="print the runbook of a finding code")
    explain.add_argument("code")

    commands.add_parser("checks", help="list every check")
    return parser


def add_live_options(parser: argparse.ArgumentParser) -> None:
    live = parser.add_argument_group("live (the running system)")
    live.add_argument("--context", help="kubeconfig context (default: the current one)")
    live.add_argument("--namespace", help="namespace (default: the context's)")
    live.add_argument(
        "--ray-address", metavar="ADDR", help="Ray GCS host:port, ray://host:port or dashboard URL"
    )
    live.add_argument(
        "--redis-url",
        metavar="URL",
        help="redis://[:password@]host:port/db (or MOCHI_REDIS_PASSWORD)",
    )
    live.add_argument("--api-url", metavar="URL", help="the service's base URL")
    live.add_argument(
        "--local",
        nargs="?",
        const=".mochi",
        metavar="PATH",
        help="the addresses `mochi local` wrote: its --dir or the local.json file (default .mochi)",
    )
    live.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="deadline of the whole live read (default 30)",
    )
    live.add_argument(
        "--probe-from-pod",
        action="store_true",
        help="also probe from inside a Ray worker and an API pod (kubectl exec rights needed)",
    )


def live_options(args) -> LiveOptions | None:
    """What to read live, or None when the input is manifests or a snapshot only."""
    if args.timeout <= 0:
        raise InputError("--timeout must be a positive number of seconds")
    offline = bool(getattr(args, "manifests", None) or getattr(args, "snapshot", None))
    options = options_from_local(args.local, args.timeout) if args.local else LiveOptions()
    options.timeout = args.timeout
    options.ray_address = args.ray_address or options.ray_address
    options.redis_url = args.redis_url or options.redis_url
    options.api_url = args.api_url or options.api_url
    options.context, options.namespace = args.context, args.namespace
    options.probe_from_pod = args.probe_from_pod
    implied = not offline and not args.local and not options.wanted
    explicit = args.context or args.namespace or args.probe_from_pod
    if implied and not explicit and not kubeconfig_available():
        raise InputError(
            "nothing to diagnose: give --manifests, --snapshot, --local, component addresses "
            "(--ray-address, --redis-url, --api-url), or a kubeconfig (KUBECONFIG, "
            "~/.kube/config) for the live cluster"
        )
    options.kubernetes = bool(explicit or implied)
    if args.ray_address:
        options.dashboard_url = None
    if offline and not options.wanted:
        return None
    return options


def kubeconfig_available() -> bool:
    files = os.environ.get("KUBECONFIG", "").split(os.pathsep) + ["~/.kube/config"]
    in_cluster = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
    return in_cluster or any(f and Path(f).expanduser().is_file() for f in files)


def read_inputs(args) -> Inventory:
    """Every input read into one inventory; files it cannot check are noted in it. Exit 2
    (InputError) only when no Kubernetes object and no recorded state could be read at all."""
    if args.manifests.count(STDIN) + (args.snapshot == STDIN) > 1:
        raise InputError("standard input (-) can be read once: give it to one option")
    inventory = Inventory(source="snapshot" if args.snapshot else "manifests")
    if args.manifests:
        load_manifests(args.manifests, inventory)
    if args.snapshot:
        load_snapshot(args.snapshot, inventory)
    options = live_options(args)
    if options is not None:
        read_live(options, inventory)
    elif not inventory.objects and not inventory.state:
        paths = ", ".join(args.manifests + ([args.snapshot] if args.snapshot else []))
        raise NothingRead(f"no Kubernetes objects in {paths}", inventory.skipped)
    return inventory


class NothingRead(InputError):
    """Not one Kubernetes object in the input: the doctor exits 2, saying why for each file."""

    def __init__(self, message: str, skipped: list[SkippedFile]):
        self.skipped = skipped
        super().__init__(message)


def print_notes(notes: list[str]) -> None:
    for note in notes:
        print(f"doctor: {note}", file=sys.stderr)


def run_snapshot(args) -> int:
    options = live_options(args)
    inventory = read_live(options)
    written = write_snapshot(inventory, args.out)
    failed = [p for p in inventory.state.get("probes") or [] if not p.get("ok")]
    print(f"wrote {len(written)} files to {args.out} ({len(failed)} failed probe(s))")
    return EXIT_OK


def run_diagnose(args) -> int:
    inventory = read_inputs(args)
    baseline = load_baseline(args.baseline) if args.baseline else None
    result = diagnose(inventory, baseline)
    if args.format == "text":
        print_notes(input_notes(result))
    if args.write_baseline:
        document = baseline_document(result.findings, "accepted when the baseline was written")
        Path(args.write_baseline).write_text(yaml.safe_dump(document, sort_keys=False))
        print(f"wrote {len(result.findings)} accepted findings to {args.write_baseline}")
        return EXIT_OK
    render = {
        "text": lambda: to_text(result),
        "json": lambda: to_json(result) + "\n",
        "junit": lambda: to_junit(result),
        "sarif": lambda: to_sarif(result, inventory.origin) + "\n",
    }[args.format]
    output = render()
    if args.output:
        try:
            Path(args.output).write_text(output)
        except OSError as error:
            raise InputError(f"{args.output}: cannot write: {error}") from None
    else:
        sys.stdout.write(output)
    worst = result.worst_rank()
    if args.fail_on == "never" or worst is None:
        return EXIT_OK
    return EXIT_FINDINGS if worst <= severity_rank(args.fail_on) else EXIT_OK


def run_explain(code: str) -> int:
    code = code.upper()
    page = RUNBOOKS / f"{code}.md"
    all_checks()
    if code not in REGISTRY or not page.exists():
        raise InputError(f"unknown code {code}; `doctor checks` lists them")
    sys.stdout.write(page.read_text())
    return EXIT_OK


def run_checks() -> int:
    for check in all_checks():
        print(f"{check.code:9} {check.severity:8} {check.category:13} {check.summary}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "diagnose":
            return run_diagnose(args)
        if args.command == "snapshot":
            return run_snapshot(args)
        if args.command == "explain":
            return run_explain(args.code)
        return run_checks()
    except NothingRead as error:
        print_notes([f"skipped: {skipped}" for skipped in error.skipped])
        print(f"doctor: error: {error}", file=sys.stderr)
        return EXIT_BROKEN
    except InputError as error:
        print(f"doctor: error: {error}", file=sys.stderr)
        return EXIT_BROKEN
    except Exception as error:  # the doctor itself failed: say so, exit 2, no traceback
        print(f"doctor: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_BROKEN


if __name__ == "__main__":
    sys.exit(main())
