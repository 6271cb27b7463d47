"""Which containers run a Redis server, and of which image family: read by the Redis checks
and the security checks alike."""

from __future__ import annotations

import re

from doctor.images import parse_image
from doctor.inventory import command_text

SERVER_PROGRAMS = ("redis-server", "redis-stack-server")
OFFICIAL_REPOSITORIES = {"redis", "library/redis", "docker.io/redis", "docker.io/library/redis"}
SERVER_IMAGES = re.compile(
    r"^(gb-)?redis-?(slave|replica|follower|master|leader)?$|^redis-stack(-server)?$|^redis-cluster$"
)


def flavor(image: str) -> str:
    """ "bitnami", "official" (docker-library, redis-stack) or "other"."""
    ref = parse_image(image)
    repository = ref.repository.lower()
    if "bitnami" in repository:
        return "bitnami"
    if repository.endswith("/library/redis") or repository in OFFICIAL_REPOSITORIES:
        return "official"
    if ref.short_name.startswith("redis-stack"):
        return "official"
    return "other"


def is_redis_server(container: dict) -> bool:
    """A container that runs a Redis server: a Redis server image whose command starts the
    server (or keeps the image's own), not one that only runs redis-cli against another."""
    image = parse_image(str(container.get("image", "")))
    if not SERVER_IMAGES.match(image.short_name.lower()):
        return False
    text = command_text(container)
    if any(program in text for program in SERVER_PROGRAMS):
        return True
    if "redis-cli" in text or "sentinel" in text:
        return False
    if container.get("command"):
        return flavor(str(container.get("image", ""))) == "bitnami" and "/bitnami/" in text
    args = [str(a) for a in container.get("args") or []]
    # The official entrypoint starts the server when the first argument is a flag or a file.
    return not args or args[0].startswith("-") or args[0].endswith(".conf")
