"""`doctor diagnose | explain | checks`. Exit codes: 0 nothing at or above --fail-on,
1 findings at or above it, 2 the doctor could not run (bad input, unreadable file)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from doctor.diagnose import baseline_document, diagnose, load_baseline
from doctor.finding import severity_rank
from doctor.inventory import Inventory
from doctor.registry import REGISTRY, all_checks
from doctor.report import to_json, to_junit, to_sarif, to_text
from doctor.sources import InputError, load_manifests, load_snapshot

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
        metavar="PATH",
        default=[],
        help="YAML/JSON files or folders (with Dockerfiles, requirements files)",
    )
    diag.add_argument(
        "--snapshot", metavar="PATH", help="kubectl get -o yaml|json output, or a folder of it"
    )
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

    explain = commands.add_parser("explain", help="print the runbook of a finding code")
    explain.add_argument("code")

    commands.add_parser("checks", help="list every check")
    return parser


def run_diagnose(args) -> int:
    if not args.manifests and not args.snapshot:
        raise InputError("give --manifests PATH... and/or --snapshot PATH")
    inventory = Inventory(source="snapshot" if args.snapshot else "manifests")
    if args.manifests:
        load_manifests(args.manifests, inventory)
    if args.snapshot:
        load_snapshot(args.snapshot, inventory)
    baseline = load_baseline(args.baseline) if args.baseline else None
    result = diagnose(inventory, baseline)
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
        if args.command == "explain":
            return run_explain(args.code)
        return run_checks()
    except InputError as error:
        print(f"doctor: error: {error}", file=sys.stderr)
        return EXIT_BROKEN
    except Exception as error:  # the doctor itself failed: say so, exit 2, no traceback
        print(f"doctor: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_BROKEN


if __name__ == "__main__":
    sys.exit(main())
