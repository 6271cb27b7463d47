"""API keys: random tokens, stored only as SHA-256 digests, each belonging to one account."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass

import redis

from service.keys import API_KEY_INFO, API_KEYS, RATE_PREFIX, lua_literal

KEY_ID_CHARS = 12
ACCOUNT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
KEY_PREFIX = "mk_"


# A key's account and its submission rate, inside the submit script. The rate is a leaky
# bucket per account (its level drains at per_minute / 60 a second; a submission adds 1 and is
# refused when the level would pass per_minute), so no window boundary lets a burst of twice
# the limit through, and each account costs one small hash whatever its rate.
# Returns the account (nil for an unknown key), the level with this submission (over
# per_minute: refused, and nothing is counted) and the seconds until one more would fit.
# per_minute defaults to the submit script's ARGV[3], its rate-per-minute argument.
AUTHENTICATE_LUA = (
    """
local function authenticate(keys_hash, digest, per_minute)
  local account = redis.call('HGET', keys_hash, digest)
  if not account then return nil end
  local limit = tonumber(per_minute or ARGV[3])
  if limit <= 0 then return account, 1, 60 end
  local time = redis.call('TIME')
  local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
  local per_second = limit / 60
  local key = RATE_PREFIX .. account
  local stored = redis.call('HMGET', key, 'level', 'at')
  local level = 0
  if stored[1] then
    level = math.max(0, tonumber(stored[1]) - (now - tonumber(stored[2])) * per_second)
  end
  local count = level + 1
  if count > limit then
    return account, limit + 1, math.max(1, math.ceil((count - limit) / per_second))
  end
  redis.call('HSET', key, 'level', string.format('%.6f', count), 'at', string.format('%.6f', now))
  redis.call('EXPIRE', key, 61)
  return account, math.ceil(count), 0
end
"""
).replace("RATE_PREFIX", lua_literal(RATE_PREFIX))


class AuthError(ValueError):
    pass


def account_for(client: redis.Redis, key: str) -> str | None:
    """The account owning a key, or None."""
    account = client.hget(API_KEYS, digest(key))
    return account.decode() if account is not None else None


async def account_for_async(client, key: str) -> str | None:
    """account_for() on an asyncio client."""
    account = await client.hget(API_KEYS, digest(key))
    return account.decode() if account is not None else None


def digest(key: str) -> str:
    # Keys are 256-bit random tokens, so an unsalted digest is not guessable; looking the digest
    # up in a hash compares no secret bytes in Python, so timing reveals nothing about the key.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def validate_account(account: str) -> str:
    if not ACCOUNT_PATTERN.match(account):
        raise AuthError(
            f"account {account!r} must be 1-63 characters of letters, digits, '_', '.', '-'"
        )
    return account


def key_id(key_digest: str) -> str:
    # Derived from the digest so that every stored key has one, old keys included; a hash of the
    # digest, so showing it reveals neither the key nor the digest that MONITOR would show.
    return hashlib.sha256(f"mochi-key-id:{key_digest}".encode()).hexdigest()[:KEY_ID_CHARS]


def add_key(
    client: redis.Redis, account: str, key: str | None = None, source: str = "created"
) -> str:
    """Store the digest of a key (a new one if none is given) for an account; return the key."""
    validate_account(account)
    key = key or new_key()
    hashed = digest(key)
    info = json.dumps({"created_at": time.time(), "source": source})
    with client.pipeline(transaction=True) as pipe:
        # HSETNX: re-adding a key (bootstrap keys at every API start) keeps its creation time.
        pipe.hset(API_KEYS, hashed, account).hsetnx(API_KEY_INFO, hashed, info).execute()
    return key


@dataclass(frozen=True)
class StoredKey:
    """What may be shown about a key: never the key, never its digest."""

    key_id: str
    account: str
    created_at: float | None
    source: str | None


def stored_keys(client: redis.Redis) -> list[StoredKey]:
    """Every key, oldest first (keys stored with no creation time first)."""
    keys = _stored_keys_by_digest(client).values()
    return sorted(keys, key=lambda key: (key.created_at or 0.0, key.account, key.key_id))


def revoke(client: redis.Redis, key_id_or_account: str) -> list[StoredKey]:
    """Delete the key with this id, else every key of this account; returns what was deleted.

    The API looks each request's key up in Redis, so a revoked key is refused at once."""
    keys = _stored_keys_by_digest(client)
    by_id = [field for field, key in keys.items() if key.key_id == key_id_or_account]
    by_account = [field for field, key in keys.items() if key.account == key_id_or_account]
    if by_id and by_account:
        raise AuthError(f"{key_id_or_account!r} is both a key id and an account; nothing revoked")
    chosen = by_id or by_account
    if chosen:
        with client.pipeline(transaction=True) as pipe:
            pipe.hdel(API_KEYS, *chosen).hdel(API_KEY_INFO, *chosen).execute()
    return [keys[field] for field in chosen]


def _stored_keys_by_digest(client: redis.Redis) -> dict[bytes, StoredKey]:
    with client.pipeline(transaction=True) as pipe:
        accounts, infos = pipe.hgetall(API_KEYS).hgetall(API_KEY_INFO).execute()
    keys = {}
    for field, account in accounts.items():
        info = json.loads(infos[field]) if field in infos else {}
        keys[field] = StoredKey(
            key_id(field.decode()), account.decode(), info.get("created_at"), info.get("source")
        )
    return keys


def add_bootstrap_keys(client: redis.Redis, pairs: str) -> list[str]:
    """`account:key,account:key` from a Secret; returns the accounts added."""
    accounts = []
    for account, key in parse_bootstrap_keys(pairs):
        add_key(client, account, key, source="bootstrap")
        accounts.append(account)
    return accounts


def reconcile_bootstrap_keys(client: redis.Redis, pairs: str) -> list[StoredKey]:
    """Make the bootstrap keys in Redis exactly the Secret's: add its keys, revoke those an
    earlier Secret held and this one does not. Keys made with `mochi keys create` (source
    "created") are never touched. Returns the revoked keys."""
    wanted = parse_bootstrap_keys(pairs)
    for account, key in wanted:
        add_key(client, account, key, source="bootstrap")
    kept = {digest(key).encode() for _, key in wanted}
    stored = _stored_keys_by_digest(client)
    stale = [
        field for field, key in stored.items() if key.source == "bootstrap" and field not in kept
    ]
    if stale:
        with client.pipeline(transaction=True) as pipe:
            pipe.hdel(API_KEYS, *stale).hdel(API_KEY_INFO, *stale).execute()
    return [stored[field] for field in stale]


def parse_bootstrap_keys(pairs: str) -> list[tuple[str, str]]:
    """(account, key) pairs of `account:key,account:key`, all checked before any is stored."""
    parsed = []
    for pair in filter(None, (item.strip() for item in pairs.split(","))):
        account, separator, key = pair.partition(":")
        if not separator or not key:
            raise AuthError("MOCHI_BOOTSTRAP_API_KEYS entries must be account:key")
        parsed.append((validate_account(account), key))
    return parsed


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
