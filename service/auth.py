"""API keys: random tokens, stored only as SHA-256 digests, each belonging to one account."""

from __future__ import annotations

import hashlib
import re
import secrets

import redis

API_KEYS = "mochi:api-keys"
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


def add_key(client: redis.Redis, account: str, key: str | None = None) -> str:
    """Store the digest of a key (a new one if none is given) for an account; return the key."""
    validate_account(account)
    key = key or new_key()
    client.hset(API_KEYS, digest(key), account)
    return key


def add_bootstrap_keys(client: redis.Redis, pairs: str) -> list[str]:
    """`account:key,account:key` from a Secret; returns the accounts added."""
    accounts = []
    for pair in filter(None, (item.strip() for item in pairs.split(","))):
        account, separator, key = pair.partition(":")
        if not separator or not key:
            raise AuthError("MOCHI_BOOTSTRAP_API_KEYS entries must be account:key")
        add_key(client, account, key)
        accounts.append(account)
    return accounts


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
