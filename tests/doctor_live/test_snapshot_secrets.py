"""`doctor snapshot` keeps a live read's secrets out of every file it writes and out of every
report diagnosed from it: argv, env, values equal to a Secret's, ConfigMap text and logs."""

from __future__ import annotations

import base64

import pytest

from doctor.cli import FORMATS, main
from doctor.diagnose import diagnose
from doctor.inventory import Inventory
from doctor.redaction import redact_argv, redact_text
from doctor.sources import load_snapshot
from doctor.sources.record import write_snapshot

# Where each secret sits in the read below.
SECRETS = {
    "argv --requirepass X": "ArgvRequire11",
    "argv --masterauth=X": "ArgvMaster22",
    "argv redis-cli -a X": "ArgvCliAuth33",
    "argv --password X": "ArgvPassword44",
    "argv --token X": "ArgvToken55",
    "env REDISCLI_AUTH": "EnvCliAuth66",
    "env REDIS_PASS": "EnvRedisPass77",
    "env API_KEY_VALUE": "EnvKeyValue88",
    "env REDIS_ARGS": "EnvArgsPass99",
    "Secret data, copied into env": "FromSecretData1",
    "Secret stringData, in a script": "FromStringData2",
    "redis.conf requirepass": "ConfRequire3",
    "redis.conf masterauth": "ConfMaster4",
    "script password line": "ScriptPassword5",
    "script redis-cli -a": "ScriptCliAuth6",
    "log redis-cli -a": "LogCliAuth7",
    "log URL password": "LogUrlPass8",
    "log password=": "LogInline9",
}
NAMESPACE = "mochi"


def _meta(name: str) -> dict:
    return {"name": name, "namespace": NAMESPACE, "labels": {"app": name}}


def recorded_cluster() -> Inventory:
    """A read as the live source fills it, holding each shape of secret once."""
    s = SECRETS
    inventory = Inventory(source="live")
    encoded = base64.b64encode(s["Secret data, copied into env"].encode()).decode()
    inventory.add(
        {
            "kind": "Secret",
            "metadata": _meta("mochi-redis"),
            "data": {"password": encoded},
            "stringData": {"script-password": s["Secret stringData, in a script"]},
        }
    )
    inventory.add(
        {
            "kind": "ConfigMap",
            "metadata": _meta("redis-config"),
            "data": {
                "redis.conf": f"port 6379\nrequirepass {s['redis.conf requirepass']}\n"
                f"masterauth {s['redis.conf masterauth']}\nappendonly yes\n",
                "check.sh": f"#!/bin/sh\npassword {s['script password line']}\n"
                f"redis-cli -a {s['script redis-cli -a']} ping\n"
                f"curl -H 'X: {s['Secret stringData, in a script']}' http://api\n",
            },
        }
    )
    redis = {
        "name": "redis",
        "image": "redis:7.2",
        "command": ["redis-server", "--requirepass", s["argv --requirepass X"]],
        "args": [f"--masterauth={s['argv --masterauth=X']}", "--appendonly", "yes"],
        "env": [
            {"name": "REDISCLI_AUTH", "value": s["env REDISCLI_AUTH"]},
            {"name": "REDIS_PASS", "value": s["env REDIS_PASS"]},
            {"name": "API_KEY_VALUE", "value": s["env API_KEY_VALUE"]},
            {"name": "REDIS_ARGS", "value": f"--requirepass {s['env REDIS_ARGS']}"},
            {"name": "UPSTREAM", "value": s["Secret data, copied into env"]},
            {"name": "REDIS_PORT", "value": "6379"},
        ],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/redis"}],
    }
    probe = {
        "name": "probe",
        "image": "redis:7.2",
        "command": ["sh", "-c", f"redis-cli -h redis -a {s['argv redis-cli -a X']} ping"],
        "args": ["--password", s["argv --password X"], "--token", s["argv --token X"]],
    }
    inventory.add(
        {
            "kind": "Pod",
            "metadata": _meta("redis-0"),
            "spec": {
                "containers": [redis, probe],
                "volumes": [{"name": "config", "configMap": {"name": "redis-config"}}],
            },
            "status": {
                "phase": "Running",
                "containerStatuses": [{"name": "redis", "restartCount": 3, "image": "redis:7.2"}],
            },
        }
    )
    inventory.live.logs = {
        f"Pod/{NAMESPACE}/redis-0/redis": f"+ redis-cli -a {s['log redis-cli -a']} ping\n"
        f"connecting to redis://default:{s['log URL password']}@redis:6379/0\n"
        f"retrying with password={s['log password=']}\n"
    }
    return inventory


def _leaks(text: str) -> list[str]:
    return [where for where, value in SECRETS.items() if value in text]


def _evidence(inventory: Inventory) -> set[tuple]:
    return {(f.code, f.resource, f.evidence) for f in diagnose(inventory).findings}


def test_snapshot_files_hold_no_secret(tmp_path):
    written = write_snapshot(recorded_cluster(), str(tmp_path))
    assert {p.name for p in written} >= {"objects.json", "logs.json"}
    for path in written:
        assert _leaks(path.read_text()) == [], path.name


def test_snapshot_keeps_what_the_checks_read(tmp_path):
    inventory = recorded_cluster()
    write_snapshot(inventory, str(tmp_path))
    offline = load_snapshot(str(tmp_path))
    assert _evidence(offline) == _evidence(inventory)
    assert "SEC005" in {code for code, _, _ in _evidence(offline)}
    pod = offline.get("Pod", NAMESPACE, "redis-0")
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["REDIS_PORT"] == "6379"
    assert env["REDISCLI_AUTH"] == "En" + "*" * (len(SECRETS["env REDISCLI_AUTH"]) - 2)
    assert offline.get("Secret", NAMESPACE, "mochi-redis")["data"] == {"password": "<redacted>"}


def test_masking_twice_changes_nothing(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    write_snapshot(recorded_cluster(), str(first))
    write_snapshot(load_snapshot(str(first)), str(second))
    for path in first.iterdir():
        assert (second / path.name).read_text() == path.read_text(), path.name


@pytest.mark.parametrize("format_", FORMATS)
def test_reports_from_the_snapshot_hold_no_secret(tmp_path, format_):
    write_snapshot(recorded_cluster(), str(tmp_path / "snap"))
    report = tmp_path / f"report.{format_}"
    code = main(
        ["diagnose", "--snapshot", str(tmp_path / "snap"), "--format", format_,
         "--output", str(report), "--fail-on", "never"]
    )  # fmt: skip
    assert code == 0
    text = report.read_text()
    assert "SEC005" in text
    assert _leaks(text) == []


def test_redact_text_masks_each_shape():
    text = (
        "redis-server --requirepass aaaaaaa1 --masterauth=bbbbbbb2 --redis-password ccccccc3\n"
        "redis-cli -h r -a ddddddd4 ping\nrequirepass eeeeeee5\nmasterauth fffffff6\n"
        "password ggggggg7\nREDISCLI_AUTH=hhhhhhh8 user default on >iiiiiii9\n"
        "user default on >jjjjjjj0\n"
    )
    redacted = redact_text(text)
    assert _missing(redacted, "abcdefghj") == []
    assert redact_text(redacted) == redacted


def test_redact_text_keeps_references_and_flags():
    text = "redis-server --requirepass $(REDIS_PASSWORD) --token-file /t --no-auth --port 1"
    assert redact_text(text) == text
    assert redact_argv(["redis-cli", "-a", "${PW}", "ping"]) == ["redis-cli", "-a", "${PW}", "ping"]
    assert redact_argv(["redis-server", "-a", "kept1234"])[2] == "kept1234"  # not redis-cli
    assert redact_argv(["redis-cli", "-a", "gone1234"])[2] == "go******"


def _missing(text: str, letters: str) -> list[str]:
    return [c for c in letters if c * 7 in text]
