"""The doctor's static checks pass clean on what each stack renders."""

import json

import pytest

from doctor.cli import main as doctor
from infra import render

from .conftest import SETTINGS


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_doctor_finds_no_error_or_warning_in_the_render(stack, tmp_path, capsys):
    render.render(stack, tmp_path / stack, overrides=SETTINGS[stack])
    exit_code = doctor(
        [
            "diagnose",
            "--manifests",
            str(tmp_path / stack),
            "--format",
            "json",
            "--fail-on",
            "warning",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert exit_code == 0, report["findings"]
    assert [f for f in report["findings"] if f["severity"] in ("error", "warning")] == []
