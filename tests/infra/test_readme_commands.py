"""The deploy commands README.md and infra/README.md print run as written: every offline
`python -m infra render` line, and prod rendered with the values their `pulumi config set ...
--stack prod` lines set (a value a runtime or the API server would refuse is refused here)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", ROOT / "infra" / "README.md"]


def shell_lines(readme: Path) -> list[str]:
    """Each command of the page's code blocks, continuation lines joined, comments dropped."""
    joined = readme.read_text().replace("\\\n", " ")
    return [line.split(" #", 1)[0].strip() for line in joined.splitlines()]


def render_commands() -> list[tuple[str, list[str]]]:
    found = []
    for readme in READMES:
        for line in shell_lines(readme):
            if line.startswith("python -m infra render"):
                found.append((readme.name, shlex.split(line)[4:]))
    return found


def prod_config_sets(readme: Path) -> list[str]:
    sets = []
    for line in shell_lines(readme):
        match = re.match(r"pulumi config set (\S+) (\S+) --stack prod$", line)
        if match:
            sets += ["-c", f"{match.group(1)}={match.group(2)}"]
    return sets


def render(arguments: list[str], out: Path) -> subprocess.CompletedProcess:
    out_at = arguments.index("--out") + 1 if "--out" in arguments else None
    if out_at is not None:
        arguments = [*arguments[:out_at], str(out), *arguments[out_at + 1 :]]
    else:
        arguments = [*arguments, "--out", str(out)]
    return subprocess.run(
        [sys.executable, "-m", "infra", "render", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_pages_hold_render_commands_for_both_stacks():
    stacks = {arguments[arguments.index("--stack") + 1] for _, arguments in render_commands()}
    assert stacks == {"dev", "prod"}


@pytest.mark.parametrize(("page", "arguments"), render_commands())
def test_each_render_command_runs_as_written(page, arguments, tmp_path):
    result = render(arguments, tmp_path)
    assert result.returncode == 0, (page, arguments, result.stdout, result.stderr)
    assert list(tmp_path.glob("*.yaml"))


@pytest.mark.parametrize("readme", READMES, ids=lambda path: str(path.relative_to(ROOT)))
def test_the_prod_values_the_page_sets_are_accepted(readme, tmp_path):
    sets = prod_config_sets(readme)
    assert len(sets) // 2 >= 4, sets  # images, the ReadWriteMany class, the Ingress host
    result = render(["--stack", "prod", *sets], tmp_path)
    assert result.returncode == 0, (sets, result.stdout, result.stderr)
