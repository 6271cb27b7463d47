"""Redis servers in the manifests, read the way the server itself reads its settings (config
file first, then the command line): a server that accepts every client without a password
(SEC003), an append-only file written where a restart loses it (REDIS005), and a memory limit
with no maxmemory below it (REDIS007)."""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from dataclasses import dataclass
from functools import cached_property

from doctor.finding import Category, Severity
from doctor.inventory import Inventory, Workload, command_text, shell_words
from doctor.redis_containers import SERVER_PROGRAMS, flavor, is_redis_server
from doctor.registry import Hit, check
from service.quantities import InvalidQuantity, parse

SHELL_SEPARATORS = {"&&", "||", ";", "|", "&"}
LOOPBACK = {"127.0.0.1", "::1", "-::1", "localhost"}
BITNAMI_DATA_DIR = "/bitnami/redis/data"
# The official image runs from WORKDIR /data and is built with protected mode off.
OFFICIAL_DATA_DIR = "/data"
# redis.conf memory units (case-insensitive): k = 1000 bytes, kb = 1024, and so on.
REDIS_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 2**10, "m": 10**6, "mb": 2**20, "g": 10**9,
               "gb": 2**30}  # fmt: skip
REDIS_MEMORY = re.compile(r"^(\d+)\s*([a-z]*)$")


def _server_words(container: dict) -> list[str] | None:
    """The words after the redis-server program, up to the shell's next command."""
    words = shell_words(command_text(container))
    for i, word in enumerate(words):
        if posixpath.basename(word) in SERVER_PROGRAMS:
            rest = words[i + 1 :]
            end = next((j for j, w in enumerate(rest) if w in SHELL_SEPARATORS), len(rest))
            return rest[:end]
    if container.get("command"):
        return None
    return words


def parse_config(text: str) -> dict[str, str]:
    """redis.conf directives (the last one wins, as in Redis)."""
    settings: dict[str, str] = {}
    for line in text.splitlines():
        words = shell_words(line.strip())
        if words and not words[0].startswith("#"):
            settings[words[0].lower()] = " ".join(words[1:])
    return settings


def _flags(words: list[str]) -> tuple[list[str], dict[str, str]]:
    """Config files and `--name value...` options of a redis-server command line."""
    files: list[str] = []
    flags: dict[str, str] = {}
    name = None
    for word in words:
        if word.startswith("--") and len(word) > 2:
            name = word[2:].lower()
            flags[name] = ""
        elif name is not None:
            flags[name] = f"{flags[name]} {word}".strip()
        elif word != "-":
            files.append(word)
    return files, flags


@dataclass
class RedisServer:
    workload: Workload
    container: dict

    @property
    def name(self) -> str:
        return str(self.container.get("name", "?"))

    @cached_property
    def flavor(self) -> str:
        return flavor(str(self.container.get("image", "")))

    @cached_property
    def env(self):
        return self.workload.env(self.container)

    @property
    def uses_bitnami_entrypoint(self) -> bool:
        return self.flavor == "bitnami" and not self.container.get("command")

    def env_text(self, name: str) -> str | None:
        item = self.env.get(name)
        return None if item is None else item.value

    @cached_property
    def command_words(self) -> list[str] | None:
        words = _server_words(self.container)
        if words is None:
            return None
        extra = self.env_text("REDIS_ARGS") or ""  # redis-stack's way to pass options
        if self.uses_bitnami_entrypoint:
            extra = f"{extra} {self.env_text('REDIS_EXTRA_FLAGS') or ''}"
        return words + shell_words(extra)

    @cached_property
    def config_files(self) -> list[str]:
        return _flags(self.command_words or [])[0]

    @cached_property
    def flags(self) -> dict[str, str]:
        return _flags(self.command_words or [])[1]

    @cached_property
    def file_settings(self) -> dict[str, str] | None:
        """The directives of its config files; None when one of them is not in the input (or
        the command line cannot be read), so that only its command line is known."""
        if self.command_words is None:
            return None
        settings: dict[str, str] = {}
        for path in self.config_files:
            text = self._mounted_text(path)
            if text is None:
                return None
            settings.update(parse_config(text))
        return settings

    def setting(self, name: str, default: str = "") -> str | None:
        """A directive as the server sees it (the command line wins); None when unknown."""
        if name in self.flags:
            return self.flags[name].strip("\"'")
        if self.file_settings is None:
            return None
        return self.file_settings.get(name, default).strip("\"'")

    def _mounted_text(self, path: str) -> str | None:
        """The text of a file a ConfigMap or Secret of the input mounts at `path`."""
        for mount in self.container.get("volumeMounts") or []:
            mount_path = str(mount.get("mountPath", "")).rstrip("/")
            if mount.get("subPath"):
                key = str(mount["subPath"]) if path == mount_path else None
            elif posixpath.dirname(path) == mount_path:
                key = posixpath.basename(path)
            else:
                key = None
            if key is not None:
                return self._volume_file(self.workload.volume(mount.get("name")) or {}, key)
        return None

    def _volume_file(self, volume: dict, path: str) -> str | None:
        source = volume.get("configMap") or volume.get("secret")
        if not source:
            return None
        kind = "ConfigMap" if "configMap" in volume else "Secret"
        name = source.get("name") or source.get("secretName")
        obj = self.workload.inventory.get(kind, self.workload.namespace, name) or {}
        items = {i.get("path"): i.get("key") for i in source.get("items") or []}
        key = items.get(path, path if not items else None)
        if key in (obj.get("stringData") or {}):
            return str(obj["stringData"][key])
        value = (obj.get("data") or {}).get(key)
        if value is None or kind == "ConfigMap":
            return None if value is None else str(value)
        try:
            return base64.b64decode(str(value)).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    # -- what it is set to -------------------------------------------------------------------
    def password_source(self) -> str | None:
        """Where its password comes from; "" when it has none; None when unknown."""
        if self.setting("requirepass"):
            return "requirepass"
        if self.flavor == "bitnami":
            for name in ("REDIS_PASSWORD", "REDIS_PASSWORD_FILE"):
                item = self.env.get(name)
                if item is not None and (item.value is None or item.value):
                    return name
            allow_empty = (self.env_text("ALLOW_EMPTY_PASSWORD") or "").lower()
            # Without either, bitnami's entrypoint refuses to start: not an open server.
            return "" if allow_empty in ("yes", "true", "1") else None
        if self.flavor == "other" and ({"REDIS_PASSWORD", "REDIS_ARGS"} & set(self.env)):
            return "env"  # an image of its own convention: assume it reads these
        return "" if self.setting("requirepass") == "" else None

    def loopback_only(self) -> bool:
        binds = set((self.setting("bind") or "").split())
        return bool(binds) and binds <= LOOPBACK

    def protected(self) -> bool:
        """protected-mode yes and no bind: Redis itself refuses clients from other hosts."""
        return (self.setting("protected-mode") or "").lower() == "yes" and not self.setting("bind")

    def appendonly(self) -> str | None:
        """Where `appendonly yes` comes from, or None."""
        if self.uses_bitnami_entrypoint and self.setting("appendonly") == "":
            aof = (self.env_text("REDIS_AOF_ENABLED") or "yes").lower()
            return "bitnami's default REDIS_AOF_ENABLED=yes" if aof == "yes" else None
        return "appendonly yes" if (self.setting("appendonly") or "").lower() == "yes" else None

    def data_dir(self) -> str | None:
        default = BITNAMI_DATA_DIR if self.uses_bitnami_entrypoint else None
        if self.flavor == "official":
            default = OFFICIAL_DATA_DIR
        directory = self.setting("dir")
        if directory is None or "$" in directory:  # set by the shell at start: unknown here
            return None
        if not directory:
            return default
        if posixpath.isabs(directory):
            return posixpath.normpath(directory)
        return posixpath.normpath(posixpath.join(default, directory)) if default else None

    def volume_under(self, directory: str) -> tuple[dict, dict] | None:
        """The mount (and its volume) that holds `directory`: the deepest one."""
        holding = []
        for mount in self.container.get("volumeMounts") or []:
            path = posixpath.normpath(str(mount.get("mountPath", "/")))
            inside = directory == path or directory.startswith(path.rstrip("/") + "/")
            if inside and not (mount.get("subPath") and path != directory):
                holding.append((len(path), mount))
        if not holding:
            return None
        mount = max(holding, key=lambda item: item[0])[1]
        return mount, self.workload.volume(mount.get("name")) or {}


def redis_servers(inventory: Inventory) -> list[RedisServer]:
    return [
        RedisServer(workload, container)
        for workload in inventory.workloads
        for container in workload.containers
        if is_redis_server(container)
    ]


def _describe(server: RedisServer) -> str:
    command = command_text(server.container) or "(image default)"
    files = f"; config {', '.join(server.config_files)}" if server.config_files else ""
    return f"command: {command}{files}"


@check(
    code="SEC003",
    severity=Severity.ERROR,
    category=Category.SECURITY,
    summary="Redis runs without a password",
    fix="Start Redis with --requirepass from a Secret (env REDIS_PASSWORD) and give clients the "
    "password from the same Secret.",
)
def redis_without_password(inventory: Inventory):
    for server in redis_servers(inventory):
        if server.password_source() != "" or server.loopback_only() or server.protected():
            continue
        ignored = ""
        if server.flavor == "official" and "REDIS_PASSWORD" in server.env:
            ignored = " (the official image ignores env REDIS_PASSWORD: pass --requirepass)"
        if server.flavor == "bitnami":
            evidence = "ALLOW_EMPTY_PASSWORD=yes; no REDIS_PASSWORD"
        else:
            evidence = f"{_describe(server)}; no requirepass"
        yield Hit(
            server.workload.resource,
            f"container {server.name} ({server.container.get('image')}) accepts every client "
            f"without a password{ignored}",
            evidence,
        )


@check(
    code="REDIS005",
    severity=Severity.WARNING,
    category=Category.AVAILABILITY,
    summary="Redis writes its append-only file where a restart loses it",
    fix="Mount a PersistentVolumeClaim at Redis's data dir (a StatefulSet volumeClaimTemplate), or "
    "turn appendonly off if the data may be lost.",
)
def appendonly_without_volume(inventory: Inventory):
    for server in redis_servers(inventory):
        appendonly, directory = server.appendonly(), server.data_dir()
        if not appendonly or not directory:
            continue
        held = server.volume_under(directory)
        if held is None:
            where = "in the container's own filesystem: a container restart or a new pod"
            evidence = f"{appendonly}; dir {directory}; no volume mounted there"
        elif "emptyDir" in held[1]:
            where = "on an emptyDir: deleting, evicting or rescheduling the pod"
            evidence = f"{appendonly}; dir {directory}; emptyDir {held[0].get('name')}"
        else:
            continue
        yield Hit(
            server.workload.resource,
            f"container {server.name} ({server.container.get('image')}) writes its append-only "
            f"file to {directory} {where} loses every key it holds",
            evidence,
        )


def redis_bytes(value: str) -> int | None:
    """A redis.conf memory value (`409mb`, `1gb`, `100000`) in bytes; None when unreadable."""
    match = REDIS_MEMORY.match(value.strip().lower())
    if not match or match.group(2) not in REDIS_UNITS:
        return None
    return int(match.group(1)) * REDIS_UNITS[match.group(2)]


def _memory_limit(container: dict) -> tuple[str, int] | None:
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    if limit is None:
        return None
    try:
        return str(limit), int(parse(limit))
    except InvalidQuantity:
        return None  # CONF001 reports the value


@check(
    code="REDIS007",
    severity=Severity.WARNING,
    category=Category.MEMORY,
    summary="Redis has a memory limit but no maxmemory below it",
    fix="Start Redis with --maxmemory at about 80% of its container's memory limit and "
    "--maxmemory-policy noeviction: it then refuses writes instead of being OOM-killed.",
)
def limit_without_maxmemory(inventory: Inventory):
    for server in redis_servers(inventory):
        limit = _memory_limit(server.container)
        setting = server.setting("maxmemory")
        if limit is None or setting is None or "$" in setting:
            continue
        maxmemory = redis_bytes(setting or "0")
        if maxmemory is None or 0 < maxmemory < limit[1]:
            continue
        if maxmemory == 0:
            what, shown = "no maxmemory", "no maxmemory"
        else:
            what, shown = f"maxmemory {setting}, not below that limit,", f"maxmemory {setting}"
        yield Hit(
            server.workload.resource,
            f"container {server.name} ({server.container.get('image')}) has a memory limit of "
            f"{limit[0]} and {what} so Redis grows until the kernel OOM-kills it instead of "
            "refusing writes; a restart then has to load its whole data set back into the "
            "same memory",
            f"{_describe(server)}; limits.memory {limit[0]}; {shown}",
        )
