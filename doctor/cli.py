"""`doctor diagnose | snapshot | explain | checks`. Exit codes: 0 nothing at or above --fail-on,
1 findings at or above it, 2 the doctor could not run (no Kubernetes object in the input, a
missing path). A file it cannot check (a template, invalid YAML) is a note, not the end of the run.

With no --manifests and no --snapshot, `diagnose` reads the running system: Kubernetes
(--kubeconfig, --context, -n/--namespace or -A), Ray, Redis and the API at the addresses given,
or those `mochi local` wrote (--local). Each probe has its own timeout and the read ends within
--timeout; a component that does not answer is a finding, not a failure of the doctor.

Bad arguments (a flag argparse rejects, a --context the kubeconfig lacks, an unknown --only
code) are usage errors: one line on stderr naming the fix, exit 2, before anything is read."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

from doctor import colour
from doctor.diagnose import baseline_document, diagnose, load_baseline
from doctor.finding import SEVERITIES, severity_rank
from doctor.inventory import Inventory
from doctor.registry import REGISTRY, Check, all_checks
from doctor.report import input_notes, runbook_base, to_json, to_junit, to_sarif, to_text
from doctor.selection import SelectionError, parse_names, select_checks
from doctor.sources import InputError, load_manifests, load_snapshot
from doctor.sources.files import STDIN, SkippedFile
from doctor.sources.kube_live import context_names, kubeconfig_files
from doctor.sources.live import LiveOptions, options_from_local, read_live
from doctor.sources.record import write_snapshot
from service.version import package_version

RUNBOOKS = Path(__file__).resolve().parent / "runbooks"  # a link to runbooks/, packaged
EXIT_OK, EXIT_FINDINGS, EXIT_BROKEN = 0, 1, 2
FORMATS = ("text", "json", "junit", "sarif")


class UsageError(Exception):
    """Bad arguments: one line on stderr and the help to read, exit 2, no usage block."""

    def __init__(self, message: str, command: str | None = None):
        super().__init__(message)
        self.help = f"doctor {command} --help" if command else "doctor --help"


class Parser(argparse.ArgumentParser):
    """argparse whose errors are raised as UsageError, for main to print as one line."""

    def error(self, message: str):
        raise UsageError(message, self.prog.removeprefix("doctor").strip() or None)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="doctor", description="Find what breaks a Mochi/Ray/Redis deployment, and say why."
    )
    parser.add_argument("--version", action="version", version=f"doctor {package_version()}")
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
    add_format_option(diag, FORMATS)
    diag.add_argument("--output", metavar="FILE", help="write the report here, not stdout")
    add_selection_options(diag)
    diag.add_argument(
        "--no-color",
        action="store_true",
        help="no colour (also NO_COLOR=1); colour is only ever used when stdout is a terminal",
    )
    diag.add_argument("--fail-on", choices=("error", "warning", "info", "never"), default="error")
    diag.add_argument(
        "--runbook-url",
        metavar="BASE",
        type=runbook_base,
        default=os.environ.get("DOCTOR_RUNBOOK_URL"),
        help="absolute URL of the runbooks (BASE/CODE.md): SARIF helpUri (or DOCTOR_RUNBOOK_URL)",
    )
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

    checks = commands.add_parser("checks", help="list every check")
    add_format_option(checks, ("text", "json"))
    return parser


def add_format_option(parser: argparse.ArgumentParser, formats: tuple[str, ...]) -> None:
    where = ", and --output FILE is where the report goes" if "sarif" in formats else ""
    parser.add_argument(
        "-o",
        "--output-format",
        "--format",
        dest="format",
        choices=formats,
        default="text",
        metavar="FORMAT",
        help=f"{'|'.join(formats)} (default text), as kubectl's -o; --format is the same "
        f"option{where}",
    )


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    choose = parser.add_argument_group("which checks and findings")
    for flag, what in (("--only", "run only these checks"), ("--skip", "do not run these")):
        choose.add_argument(
            flag,
            action="append",
            default=[],
            metavar="CODE|CATEGORY[,...]",
            help=f"{what}: codes (NET001) or categories (memory); may be repeated",
        )
    choose.add_argument(
        "--min-severity",
        choices=SEVERITIES,
        default="info",
        help="report only findings at least this severe; the summary counts the hidden ones, "
        "and they do not count for --fail-on (default info: all)",
    )


def add_live_options(parser: argparse.ArgumentParser) -> None:
    live = parser.add_argument_group("live (the running system)")
    live.add_argument(
        "--kubeconfig", metavar="PATH", help="kubeconfig file (default: KUBECONFIG, ~/.kube/config)"
    )
    live.add_argument(
        "--context", help="kubeconfig context (default: the current one); must exist in it"
    )
    scope = live.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="namespace (default: the context's)")
    scope.add_argument(
        "-A",
        "--all-namespaces",
        action="store_true",
        help="read every namespace (needs cluster-wide list rights)",
    )
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
    live.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a line on stderr as each source starts and ends (default: when stderr is a terminal)",
    )


def live_options(args) -> LiveOptions | None:
    """What to read live, or None when the input is manifests or a snapshot only."""
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds", args.command)
    offline = bool(getattr(args, "manifests", None) or getattr(args, "snapshot", None))
    options = options_from_local(args.local, args.timeout) if args.local else LiveOptions()
    options.timeout = args.timeout
    options.ray_address = args.ray_address or options.ray_address
    options.redis_url = args.redis_url or options.redis_url
    options.api_url = args.api_url or options.api_url
    options.context, options.namespace = args.context, args.namespace
    options.kubeconfig, options.all_namespaces = args.kubeconfig, args.all_namespaces
    options.probe_from_pod = args.probe_from_pod
    implied = not offline and not args.local and not options.wanted
    explicit = (
        args.context
        or args.namespace
        or args.all_namespaces
        or args.kubeconfig
        or args.probe_from_pod
    )
    if implied and not explicit and not kubeconfig_available():
        raise InputError(
            "nothing to diagnose: give --manifests, --snapshot, --local, component addresses "
            "(--ray-address, --redis-url, --api-url), or a kubeconfig (KUBECONFIG, "
            "~/.kube/config) for the live cluster"
        )
    options.kubernetes = bool(explicit or implied)
    if options.kubernetes:
        check_kube_target(args)
    if args.ray_address:
        options.dashboard_url = None
    if offline and not options.wanted:
        return None
    return options


def check_kube_target(args) -> None:
    """A --kubeconfig that is no file, or a --context its kubeconfig lacks, is a usage error
    (kubectl's answer too), not a finding about a cluster nobody meant."""
    if args.kubeconfig and not Path(args.kubeconfig).expanduser().is_file():
        raise UsageError(f"--kubeconfig {args.kubeconfig}: no such file", args.command)
    if not args.context:
        return
    where = kubeconfig_files(args.kubeconfig) or "~/.kube/config"
    names = context_names(args.kubeconfig)
    if names is None:
        raise UsageError(
            f"--context {args.context}: no readable kubeconfig at {where} (--kubeconfig, "
            "KUBECONFIG)",
            args.command,
        )
    if args.context not in names:
        raise UsageError(
            f"--context {args.context}: no such context in {where}; its contexts: "
            f"{', '.join(names) or 'none'}",
            args.command,
        )


def progress_reporter(args):
    """Where a live read tells its progress: stderr (stdout holds the report only), with
    --progress or when stderr is a terminal; None for no progress."""
    show = sys.stderr.isatty() if args.progress is None else args.progress
    return (lambda line: print(line, file=sys.stderr, flush=True)) if show else None


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
        read_live(options, inventory, progress_reporter(args))
    elif not inventory.objects and inventory.live.empty:
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
    inventory = read_live(options, progress=progress_reporter(args))
    written = write_snapshot(inventory, args.out)
    failed = [p for p in inventory.live.probes or () if not p.ok]
    print(f"wrote {len(written)} files to {args.out} ({len(failed)} failed probe(s))")
    return EXIT_OK


def chosen_checks(args) -> list[Check]:
    try:
        return select_checks(parse_names(args.only), parse_names(args.skip))
    except SelectionError as error:
        raise UsageError(str(error), args.command) from None


def run_diagnose(args) -> int:
    checks = chosen_checks(args)
    inventory = read_inputs(args)
    baseline = load_baseline(args.baseline) if args.baseline else None
    result = diagnose(inventory, baseline, checks, args.min_severity)
    if args.format == "text":
        print_notes(input_notes(result))
    if args.write_baseline:
        document = baseline_document(result.findings, "accepted when the baseline was written")
        Path(args.write_baseline).write_text(yaml.safe_dump(document, sort_keys=False))
        print(f"wrote {len(result.findings)} accepted findings to {args.write_baseline}")
        return EXIT_OK
    render = {
        "text": lambda: text_report(to_text(result), args),
        "json": lambda: to_json(result) + "\n",
        "junit": lambda: to_junit(result, args.fail_on, inventory.live),
        "sarif": lambda: to_sarif(result, inventory.origin, args.runbook_url) + "\n",
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


def text_report(text: str, args) -> str:
    if not args.output and colour.wanted(sys.stdout, args.no_color):
        return colour.paint(text)
    return text


def run_explain(code: str) -> int:
    code = code.upper()
    page = RUNBOOKS / f"{code}.md"
    all_checks()
    if code not in REGISTRY or not page.exists():
        raise InputError(f"unknown code {code}; `doctor checks` lists them")
    sys.stdout.write(page.read_text())
    return EXIT_OK


def run_checks(output_format: str) -> int:
    checks = all_checks()
    if output_format == "json":
        print(json.dumps({"checks": [check_entry(c) for c in checks]}, indent=2))
        return EXIT_OK
    for check in checks:
        print(f"{check.code:9} {check.severity:8} {check.category:13} {check.summary}")
    return EXIT_OK


def check_entry(check: Check) -> dict:
    return {
        "code": check.code,
        "severity": check.severity,
        "category": check.category,
        "summary": check.summary,
        "fix": check.fix,
        "runbook": check.runbook,
        "live_only": check.needs_live,
    }


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    args, extra = build_parser().parse_known_args(argv)
    if extra:
        raise UsageError(f"unrecognized arguments: {' '.join(extra)}", args.command)
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_arguments(argv)
        if args.command == "diagnose":
            return run_diagnose(args)
        if args.command == "snapshot":
            return run_snapshot(args)
        if args.command == "explain":
            return run_explain(args.code)
        return run_checks(args.format)
    except SystemExit as stop:  # --help and --version have printed; argparse stops there
        return int(stop.code or 0)
    except UsageError as error:
        print(f"doctor: error: {error} (see `{error.help}`)", file=sys.stderr)
        return EXIT_BROKEN
    except NothingRead as error:
        print_notes([f"skipped: {skipped}" for skipped in error.skipped])
        print(f"doctor: error: {error}", file=sys.stderr)
        return EXIT_BROKEN
    except InputError as error:
        print(f"doctor: error: {error}", file=sys.stderr)
        return EXIT_BROKEN
    except BrokenPipeError:  # the reader stopped early (`doctor checks | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as error:  # the doctor itself failed: say so, exit 2, no traceback
        print(f"doctor: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_BROKEN


if __name__ == "__main__":
    sys.exit(main())
