"""API keys: random tokens, stored only as SHA-256 digests, each belonging to one account."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass

import redis

API_KEYS = "mochi:api-keys"
# digest -> {"created_at": unix seconds, "source": "created" | "bootstrap"}; never read to
# authenticate, so a key stored before this existed still works and lists with no time.
API_KEY_INFO = "mochi:api-key-info"
KEY_ID_CHARS = 12
ACCOUNT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
KEY_PREFIX = "mk_"


# A key's account and its submission count in this minute's window, inside the submit script.
AUTHENTICATE_LUA = """
local function authenticate(keys_hash, digest, rate_prefix)
  local account = redis.call('HGET', keys_hash, digest)
  if not account then return nil end
  local seconds = tonumber(redis.call('TIME')[1])
  local key = rate_prefix .. account .. ':' .. math.floor(seconds / 60)
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, 120) end
  return account, count, 60 - seconds % 60
end
"""
RATE_PREFIX = "mochi:rate:"


class AuthError(ValueError):
    pass


def account_for(client: redis.Redis, key: str) -> str | None:
    """The account owning a key, or None."""
    account = client.hget(API_KEYS, digest(key))
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
    for pair in filter(None, (item.strip() for item in pairs.split(","))):
        account, separator, key = pair.partition(":")
        if not separator or not key:
            raise AuthError("MOCHI_BOOTSTRAP_API_KEYS entries must be account:key")
        add_key(client, account, key, source="bootstrap")
        accounts.append(account)
    return accounts


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
