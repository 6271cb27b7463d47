"""`mochi` as a user meets it: the installed console script in a subprocess, its exit codes and
one-line errors, `--version`, parameters checked before sending, and `mochi keys` against a
real Redis and the real API over HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import httpx
import pytest

from service import auth
from service.client import (
    EXIT_AUTH,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ApiError,
    Connection,
    MochiClient,
)
from service.processes import free_port

MOCHI = Path(sys.executable).with_name("mochi")
SMALL = ["--frames", "13", "--height", "64", "--width", "64", "--steps", "3"]


@dataclass
class Run:
    code: int
    out: str
    err: str


def mochi(*args: str, **environment: str) -> Run:
    """The console script, with no MOCHI_* from the caller's shell beyond `environment`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MOCHI_")}
    done = subprocess.run(
        [str(MOCHI), *args],
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def assert_one_line(run: Run, code: int, prefix: str) -> str:
    assert run.code == code, run
    assert run.out == "" and "Traceback" not in run.err
    lines = run.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix + ": "), run.err
    return lines[0]


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def api_status(service, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{service.url}/v1/jobs", headers=headers, timeout=10).status_code


# ---- --version, parameters, URLs, usage ------------------------------------------------------


def test_version_is_the_installed_package_version():
    run = mochi("--version")
    assert run.code == EXIT_OK and run.err == ""
    assert run.out == f"mochi {metadata.version('mochi-k8s')}\n"


def test_submit_names_each_bad_parameter_and_its_limit_with_no_server():
    run = mochi(
        "submit", "x", "--frames", "8", "--width", "65", "--steps", "1", "--guidance", "inf",
        "--seed", "-1", "--url", dead_url(), "--key", "k",
    )  # fmt: skip
    assert run.code == EXIT_INVALID and run.out == "" and "cannot reach" not in run.err
    assert run.err.splitlines() == [
        "mochi submit: invalid parameters, nothing was sent:",
        "  --frames (num_frames): must be of the form 6k+1 in [7, 163] (7, 13, 19, ...)",
        "  --width: must be a multiple of 16 in [64, 848]",
        "  --steps (num_inference_steps): Input should be greater than or equal to 2",
        "  --guidance (guidance_scale): Input should be a finite number",
        "  --seed: Input should be greater than or equal to 0",
    ]


def test_bad_parameters_win_over_missing_configuration_and_empty_prompt_is_named():
    run = mochi("submit", "", "--height", "1000")
    assert run.code == EXIT_INVALID
    assert "  prompt: String should have at least 1 character" in run.err
    assert "  --height: Input should be less than or equal to 848" in run.err


def test_nothing_reaches_the_api_when_parameters_are_bad(idle_service):
    flags = ["--url", idle_service.url, "--key", idle_service.key]
    assert mochi("submit", "x", "--frames", "8", *flags).code == EXIT_INVALID
    listing = mochi("list", "--json", *flags)
    assert listing.code == EXIT_OK and json.loads(listing.out)["total"] == 0
    assert mochi("submit", "x", *SMALL, *flags).code == EXIT_OK


def test_the_api_still_refuses_what_an_older_client_would_send(idle_service):
    connection = Connection(idle_service.url, idle_service.key)
    with MochiClient(connection) as client, pytest.raises(ApiError) as refused:
        client.submit({"prompt": "x", "num_frames": 8})
    assert refused.value.exit_code == EXIT_INVALID and refused.value.status == 422
    assert [problem["field"] for problem in refused.value.fields] == ["num_frames"]


@pytest.mark.parametrize(
    "url, problem",
    [
        ("notaurl", "no scheme"),
        ("localhost:8000", "no scheme"),
        ("ftp://example.org", "scheme 'ftp' is not http or https"),
        ("http://", "no host"),
        ("http://127.0.0.1:abc", "Invalid port: 'abc'"),
        ("http://127.0.0.1:99999", "port 99999 is not in 1-65535"),
    ],
)
def test_a_url_that_is_not_an_api_url_is_a_usage_error(url, problem):
    line = assert_one_line(mochi("status", "0" * 32, "--url", url, "--key", "k"), 2, "mochi status")
    assert f"--url {url!r} is not an API URL: {problem}" in line
    assert line.endswith("(see `mochi status --help`)")


def test_a_bad_url_from_the_environment_names_the_variable():
    run = mochi("list", MOCHI_API_URL="notaurl", MOCHI_API_KEY="k")
    line = assert_one_line(run, EXIT_USAGE, "mochi list")
    assert "MOCHI_API_URL 'notaurl' is not an API URL: no scheme" in line


USAGE_ERRORS = [
    ([], "mochi", "the following arguments are required: COMMAND"),
    (["bogus"], "mochi", "argument COMMAND: invalid choice: 'bogus'"),
    (["--nope"], "mochi", "the following arguments are required: COMMAND"),
    (["local", "--port", "x"], "mochi local", "argument --port: invalid int value: 'x'"),
    (["demo", "extra"], "mochi", "unrecognized arguments: extra"),
    (["api", "--nope"], "mochi", "unrecognized arguments: --nope"),
    (["pool", "x"], "mochi", "unrecognized arguments: x"),
    (["supervisor", "--interval", "x"], "mochi supervisor", "invalid float value: 'x'"),
    (["fetch-model", "x"], "mochi", "unrecognized arguments: x"),
    (["submit"], "mochi submit", "the following arguments are required: prompt"),
    (["submit", "x", "--frames", "abc"], "mochi submit", "invalid int value: 'abc'"),
    (["status"], "mochi status", "the following arguments are required: job_id"),
    (["list", "--limit", "x"], "mochi list", "argument --limit: invalid int value: 'x'"),
    (["cancel"], "mochi cancel", "the following arguments are required: job_id"),
    (["download"], "mochi download", "the following arguments are required: job_id"),
    (["keys"], "mochi keys", "the following arguments are required: COMMAND"),
    (["keys", "create"], "mochi keys create", "the following arguments are required: account"),
    (["keys", "list", "x"], "mochi", "unrecognized arguments: x"),
    (["keys", "revoke"], "mochi keys revoke", "arguments are required: KEY_ID|ACCOUNT"),
]


@pytest.mark.parametrize("args, prog, message", USAGE_ERRORS, ids=lambda v: repr(v))
def test_usage_errors_are_one_line_exit_2_with_the_help_to_read(args, prog, message):
    line = assert_one_line(mochi(*args), EXIT_USAGE, prog)
    assert message in line and line.endswith(f"(see `{prog} --help`)")


def test_help_lists_the_exit_codes_of_the_client_and_keys_commands():
    submit = mochi("submit", "--help")
    assert submit.code == EXIT_OK
    assert re.search(r"^  6 +invalid parameters: refused before sending", submit.out, re.M)
    keys = mochi("keys", "revoke", "--help")
    assert keys.code == EXIT_OK and re.search(r"^  5 +revoke: no key has this id", keys.out, re.M)


# ---- mochi keys --------------------------------------------------------------------------------


def keys_env(redis_url: str, **more: str) -> dict[str, str]:
    return {"MOCHI_REDIS_URL": redis_url, **more}


def create_key(env: dict[str, str], account: str) -> tuple[str, str]:
    """`mochi keys create ACCOUNT`: (key id, key)."""
    run = mochi("keys", "create", account, **env)
    assert run.code == EXIT_OK, run.err
    key = run.out.strip()
    key_id = auth.key_id(auth.digest(key))
    assert run.err == f"key {key_id} of account {account}: shown once, stored only as a digest\n"
    return key_id, key


def test_list_shows_id_time_source_account_never_the_key_or_digest(redis_server):
    env = keys_env(redis_server.url)
    created = {create_key(env, account): account for account in ("alice", "alice", "bob")}
    listing = mochi("keys", "list", "--json", **env)
    assert listing.code == EXIT_OK
    rows = json.loads(listing.out)["keys"]
    assert [(row["key_id"], row["account"]) for row in rows] == [
        (key_id, account) for (key_id, _), account in created.items()
    ]
    assert {row["source"] for row in rows} == {"created"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["created_at"]) for row in rows)
    table = mochi("keys", "list", **env).out.splitlines()
    assert table[0].split() == ["KEY", "ID", "CREATED", "SOURCE", "ACCOUNT"]
    assert [line.split()[0] for line in table[1:]] == [row["key_id"] for row in rows]
    shown = listing.out + "\n".join(table)
    for _, key in created:
        assert key not in shown and key[3:] not in shown and auth.digest(key) not in shown


def test_a_revoked_key_gets_401_from_the_api_at_once(idle_service, redis_client):
    env = keys_env(idle_service.redis_url)
    first, second = create_key(env, "alice"), create_key(env, "alice")
    bob = create_key(env, "bob")
    assert [api_status(idle_service, key) for _, key in (first, second, bob)] == [200] * 3

    revoked = mochi("keys", "revoke", first[0], **env)
    assert revoked.code == EXIT_OK and revoked.out == f"revoked key {first[0]} of account alice\n"
    assert [api_status(idle_service, key) for _, key in (first, second, bob)] == [401, 200, 200]
    refused = mochi("list", "--url", idle_service.url, "--key", first[1])
    assert refused.code == EXIT_AUTH and "unknown API key (HTTP 401)" in refused.err
    submit = mochi("submit", "x", *SMALL, "--url", idle_service.url, "--key", first[1])
    assert submit.code == EXIT_AUTH

    by_account = mochi("keys", "revoke", "bob", **env)
    assert by_account.code == EXIT_OK and by_account.out == f"revoked key {bob[0]} of account bob\n"
    assert [api_status(idle_service, key) for _, key in (first, second, bob)] == [401, 200, 401]
    # The fixture's own key and alice's second key are all that is left, in both hashes.
    assert redis_client.hlen(auth.API_KEYS) == redis_client.hlen(auth.API_KEY_INFO) == 2

    again = mochi("keys", "revoke", "bob", **env)
    line = assert_one_line(again, EXIT_NOT_FOUND, "mochi keys revoke")
    assert "no key has id 'bob' and no account 'bob' has keys" in line


def test_keys_stored_before_creation_times_list_and_revoke(redis_server, redis_client):
    old_key = auth.new_key()
    redis_client.hset(auth.API_KEYS, auth.digest(old_key), "veteran")
    env = keys_env(redis_server.url)
    table = mochi("keys", "list", **env).out.splitlines()
    key_id = auth.key_id(auth.digest(old_key))
    assert table[1].split() == [key_id, "-", "-", "veteran"]
    assert mochi("keys", "revoke", key_id, **env).code == EXIT_OK
    assert mochi("keys", "list", **env).out == "no keys\n"


def test_revoking_a_bootstrap_key_says_where_it_comes_back_from(redis_server, redis_client):
    auth.add_bootstrap_keys(redis_client, f"carol:{auth.new_key()}")
    run = mochi("keys", "revoke", "carol", **keys_env(redis_server.url))
    assert run.code == EXIT_OK and "of account carol" in run.out
    assert "comes from MOCHI_BOOTSTRAP_API_KEYS: remove it from that Secret" in run.err


def test_an_argument_that_is_both_a_key_id_and_an_account_is_refused(redis_server, redis_client):
    key = auth.add_key(redis_client, "alice")
    key_id = auth.key_id(auth.digest(key))
    auth.add_key(redis_client, key_id)
    run = mochi("keys", "revoke", key_id, **keys_env(redis_server.url))
    line = assert_one_line(run, EXIT_USAGE, "mochi keys revoke")
    assert f"{key_id!r} is both a key id and an account; nothing revoked" in line
    assert redis_client.hlen(auth.API_KEYS) == 2


def test_invalid_account_is_a_usage_error(redis_server):
    run = mochi("keys", "create", "no spaces", **keys_env(redis_server.url))
    line = assert_one_line(run, EXIT_USAGE, "mochi keys create")
    assert "account 'no spaces' must be 1-63 characters" in line


KEY_COMMANDS = [["create", "alice"], ["list"], ["revoke", "alice"]]


@pytest.mark.parametrize("command", KEY_COMMANDS, ids=lambda c: c[0])
def test_redis_down_is_one_line_exit_3(command):
    url = f"redis://127.0.0.1:{free_port()}/0"
    line = assert_one_line(mochi("keys", *command, **keys_env(url)), 3, f"mochi keys {command[0]}")
    assert f"cannot reach Redis at {url} (MOCHI_REDIS_URL): Error 111 connecting" in line


@pytest.mark.parametrize("command", KEY_COMMANDS, ids=lambda c: c[0])
def test_redis_refusing_the_password_is_one_line_exit_4(command, redis_server, redis_client):
    redis_client.config_set("requirepass", "right-password")
    for password in ("", "wrong-password"):
        env = keys_env(redis_server.url, MOCHI_REDIS_PASSWORD=password)
        run = mochi("keys", *command, **env)
        line = assert_one_line(run, EXIT_AUTH, f"mochi keys {command[0]}")
        assert "refused the password (MOCHI_REDIS_PASSWORD)" in line
        assert "wrong-password" not in line
    env = keys_env(redis_server.url, MOCHI_REDIS_PASSWORD="right-password")
    assert mochi("keys", "list", **env).code == EXIT_OK


def test_redis_refusing_a_write_is_one_line_exit_9(redis_server, redis_client):
    redis_client.config_set("maxmemory", "1")
    run = mochi("keys", "create", "alice", **keys_env(redis_server.url))
    line = assert_one_line(run, EXIT_UNAVAILABLE, "mochi keys create")
    assert line.endswith(
        f"Redis at {redis_server.url} refused (OutOfMemoryError): "
        "command not allowed when used memory > 'maxmemory'."
    )
    assert not re.search("[0-9a-f]{16}", line)


def test_a_redis_url_with_a_password_is_shown_without_it():
    url = f"redis://mochi:s3cret-in-url@127.0.0.1:{free_port()}/0"
    line = assert_one_line(mochi("keys", "list", **keys_env(url)), 3, "mochi keys list")
    assert "s3cret-in-url" not in line and "cannot reach Redis at 127.0.0.1:" in line


def test_a_redis_url_that_is_no_url_is_a_usage_error():
    line = assert_one_line(mochi("keys", "list", **keys_env("notaurl")), 2, "mochi keys list")
    assert "MOCHI_REDIS_URL is not a Redis URL" in line
