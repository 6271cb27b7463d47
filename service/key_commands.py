"""`mochi keys create|list|revoke`: API keys in the job store's Redis (MOCHI_REDIS_URL,
MOCHI_REDIS_PASSWORD). A key is printed once, by `create`; `list` shows its id, account,
creation time and source, never the key or its digest.

Exit codes:
  0  success
  2  usage: bad arguments, an invalid account name, an argument that is both a key id and an
     account, or MOCHI_* settings that cannot be read
  3  Redis cannot be reached (connection refused, DNS, timeout)
  4  Redis refused the password (MOCHI_REDIS_PASSWORD)
  5  revoke: no key has this id and no account of this name has keys
  9  Redis refused the command (out of memory, read-only replica, ...)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import redis

from service import auth
from service.client import (
    EXIT_AUTH,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ClientError,
    runner,
)
from service.config import Settings, SettingsError
from service.jobstore import connect

REDIS_TIMEOUT_SECONDS = 5.0
# redis-py starts a pipeline's error with the command it ran, and that holds a key's digest.
PIPELINE_COMMAND_ECHO = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: ", re.S)


@contextmanager
def job_store_redis() -> Iterator[redis.Redis]:
    """The settings' Redis; every Redis failure becomes one line and an exit code."""
    try:
        settings = Settings.from_env()
        client = connect(settings, socket_timeout=REDIS_TIMEOUT_SECONDS)
    except SettingsError as error:
        raise ClientError(str(error), EXIT_USAGE) from None
    except ValueError as error:  # redis-py's answer to a URL it cannot parse
        raise ClientError(f"MOCHI_REDIS_URL is not a Redis URL: {error}", EXIT_USAGE) from None
    # Without what precedes "@": a URL may carry a password even though it should not.
    address = settings.redis_url.split("@")[-1]
    try:
        yield client
    except redis.AuthenticationError as error:
        raise ClientError(
            f"Redis at {address} refused the password (MOCHI_REDIS_PASSWORD): {error}", EXIT_AUTH
        ) from None
    except (redis.ConnectionError, redis.TimeoutError) as error:
        raise ClientError(
            f"cannot reach Redis at {address} (MOCHI_REDIS_URL): {error}", EXIT_UNREACHABLE
        ) from None
    except redis.RedisError as error:
        reason = PIPELINE_COMMAND_ECHO.sub("", str(error))
        raise ClientError(
            f"Redis at {address} refused ({type(error).__name__}): {reason}", EXIT_UNAVAILABLE
        ) from None
    finally:
        client.close()


def cmd_create(args) -> int:
    with job_store_redis() as client:
        try:
            key = auth.add_key(client, args.account)
        except auth.AuthError as error:
            raise ClientError(str(error), EXIT_USAGE) from None
    print(key)
    print(
        f"key {auth.key_id(auth.digest(key))} of account {args.account}: shown once, "
        "stored only as a digest",
        file=sys.stderr,
    )
    return EXIT_OK


def cmd_list(args) -> int:
    with job_store_redis() as client:
        keys = auth.stored_keys(client)
    if args.json:
        print(json.dumps({"keys": [_as_json(key) for key in keys]}, indent=2))
    elif not keys:
        print("no keys")
    else:
        print(f"{'KEY ID':<{auth.KEY_ID_CHARS}}  {'CREATED':<20}  {'SOURCE':<9}  ACCOUNT")
        for key in keys:
            created = _iso(key.created_at) or "-"
            print(f"{key.key_id}  {created:<20}  {key.source or '-':<9}  {key.account}")
    return EXIT_OK


def cmd_revoke(args) -> int:
    with job_store_redis() as client:
        try:
            revoked = auth.revoke(client, args.target)
        except auth.AuthError as error:
            raise ClientError(str(error), EXIT_USAGE) from None
    if not revoked:
        raise ClientError(
            f"no key has id {args.target!r} and no account {args.target!r} has keys",
            EXIT_NOT_FOUND,
        )
    for key in revoked:
        print(f"revoked key {key.key_id} of account {key.account}")
        if key.source == "bootstrap":
            print(
                f"key {key.key_id} comes from MOCHI_BOOTSTRAP_API_KEYS: remove it from that "
                "Secret, or the API adds it back when it next starts",
                file=sys.stderr,
            )
    return EXIT_OK


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _as_json(key: auth.StoredKey) -> dict[str, str | None]:
    return {
        "key_id": key.key_id,
        "account": key.account,
        "created_at": _iso(key.created_at),
        "source": key.source,
    }


def add_key_commands(commands) -> None:
    """Register `keys create|list|revoke` on `mochi`'s subcommands."""
    shared = {
        "epilog": __doc__[__doc__.index("Exit codes:") :],
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }
    keys = commands.add_parser("keys", help="API keys: create, list, revoke", **shared)
    key_commands = keys.add_subparsers(dest="keys_command", metavar="COMMAND", required=True)

    create = key_commands.add_parser(
        "create", help="create a key for an account; prints it, once", **shared
    )
    create.add_argument("account")
    create.set_defaults(run=runner(cmd_create, create))

    listing = key_commands.add_parser(
        "list", help="every key: id, creation time, source, account", **shared
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(run=runner(cmd_list, listing))

    revoke = key_commands.add_parser(
        "revoke", help="delete a key by id, or all keys of an account; the API refuses it", **shared
    )
    revoke.add_argument("target", metavar="KEY_ID|ACCOUNT")
    revoke.set_defaults(run=runner(cmd_revoke, revoke))
