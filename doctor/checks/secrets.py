"""Secrets written as plain values where anyone who reads the object reads them: env values,
command lines, ConfigMap text (redis.conf, scripts), rayStartParams, a RayJob's runtime env and
a RayService's Serve config. A value is judged, not only its name: flags, numbers, paths,
references and the names of Secrets are not secrets; a placeholder is a value still to set."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass

import yaml

from doctor.finding import Category, Severity
from doctor.inventory import Inventory, command_text, name_of, namespace_of, shell_words
from doctor.redaction import mask
from doctor.registry import Hit, check
from doctor.secret_judge import judge

# A name whose last word says it holds a secret (HF_TOKEN, REDIS_PASSWORD, db.password), not
# one that says where a secret is (TOKEN_PATH, PASSWORD_FILE, SECRET_NAME). An access key
# (MINIO_ACCESS_KEY, AWS_ACCESS_KEY_ID) names the account; its secret key is the secret.
SECRET_NAME = re.compile(
    r"(?:^|[_.-])(PASSWORD|PASSWD|PASS|SECRET|TOKEN|API_?KEY|SECRET_?ACCESS_?KEY|SECRET_?KEY|"
    r"PRIVATE_?KEY|CREDENTIALS?|AUTH)$|^(REQUIREPASS|MASTERAUTH|APIKEY)$"
)
# Names whose value is a password whatever it looks like (requirepass 5241590000000000).
PASSWORD_NAME = re.compile(r"(PASSWORD|PASSWD|PASS|REQUIREPASS|MASTERAUTH|AUTH)$")
URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^:/@\s]*:(?P<password>[^@/\s]+)@")
CONFIG_LINE = re.compile(
    r"^[ \t]*(?:export[ \t]+)?[\"']?(?P<key>[\w.-]*?(?:requirepass|masterauth|password|passwd|"
    r"secret|token|api[_-]?key))[\"']?(?:[ \t]*[:=][ \t]*|[ \t]+)(?P<value>\S.*?)[,;]?[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)
CODE = re.compile(r"[()\[\]{}]|^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$")
CODE_FILES = (".py", ".js", ".ts", ".go", ".java", ".rb")
PLACEHOLDER_FIX = "Set the real value from a Secret (valueFrom.secretKeyRef) before deploying."


@dataclass(frozen=True)
class Leak:
    """A value found where a secret sits: `where` names the place, `label` the field."""

    where: str
    label: str
    value: str
    verdict: str  # "secret" | "placeholder"

    def evidence(self, separator: str = "=") -> str:
        shown = (
            self.value if self.verdict == "placeholder" else mask(self.value, length_in_words=True)
        )
        return f"{self.label}{separator}{shown}"


def _named(label: str, value: str, where: str) -> Iterator[Leak]:
    """A NAME=value pair: the URL password inside it, else the value when the name says so."""
    match = URL_PASSWORD.search(value)
    if match:
        verdict = judge(match.group("password"), by_name=False)
        if verdict:
            yield Leak(where, label, match.group("password"), verdict)
        return
    key = re.sub(r"[^A-Z0-9]", "_", label.upper())
    if SECRET_NAME.search(key):
        verdict = judge(value, by_name=not PASSWORD_NAME.search(key))
        if verdict:
            yield Leak(where, label, value, verdict)


def _argv(text: str, where: str) -> Iterator[Leak]:
    """`--requirepass X`, `--password=X`, `--token X`, redis-cli's `-a X`; URL passwords."""
    words = shell_words(text)
    for i, word in enumerate(words):
        flag, _, inline = word.partition("=")
        value = inline if inline else (words[i + 1] if i + 1 < len(words) else "")
        is_cli_auth = flag == "-a" and any(posixpath.basename(w) == "redis-cli" for w in words[:i])
        if is_cli_auth or (flag.startswith("--") and SECRET_NAME.search(_flag_key(flag))):
            verdict = judge(value, by_name=not (is_cli_auth or PASSWORD_NAME.search(flag.upper())))
            if verdict and not value.startswith("-"):
                yield Leak(where, flag, value, verdict)
        else:
            match = URL_PASSWORD.search(word)
            verdict = match and judge(match.group("password"), by_name=False)
            if verdict:
                yield Leak(where, "URL password", match.group("password"), verdict)


def _flag_key(flag: str) -> str:
    return flag.lstrip("-").upper().replace("-", "_")


def _config_text(text: str, where: str, *, code: bool) -> Iterator[Leak]:
    """`requirepass …`, `password: …` lines of a file kept in a ConfigMap, and argv in it.
    In source code (`code`) only a quoted literal is a value: `token = args.token` is not."""
    for match in CONFIG_LINE.finditer(text):
        key, raw = match.group("key"), match.group("value").strip()
        value = raw.strip("\"'")
        if CODE.search(value) or (code and raw == value):
            continue
        verdict = judge(value, by_name=not PASSWORD_NAME.search(key.upper()))
        if verdict:
            yield Leak(where, key, value, verdict)
    for line in text.splitlines():
        if "-" in line and not CONFIG_LINE.match(line):
            yield from _argv(line, where)


def _workload_leaks(inventory: Inventory) -> Iterator[tuple[str, Leak]]:
    for workload in inventory.workloads:
        secrets = {name_of(s) for s in inventory.in_namespace("Secret", workload.namespace)}
        for container in workload.all_containers:
            where = f"container {container.get('name')} of {workload.label}"
            for item in container.get("env") or []:
                value = item.get("value")
                if value is not None and str(value) not in secrets:
                    for leak in _env_leaks(str(item.get("name", "")), str(value), where):
                        yield workload.resource, leak
            for leak in _argv(command_text(container), where):
                yield workload.resource, leak
        for name, value in workload.ray_start_params.items():
            for leak in _named(name, value, f"rayStartParams of {workload.label}"):
                yield workload.resource, leak


def _env_leaks(name: str, value: str, where: str) -> list[Leak]:
    """What one env value leaks: by its name or a URL in it, else argv in it (REDIS_ARGS)."""
    return list(_named(name, value, where)) or list(_argv(value, where))


def _runtime_env_vars(document: object) -> Iterator[tuple[str, str]]:
    """env_vars of every runtime_env in a Serve config (applications, deployments) or of a
    RayJob's runtimeEnvYAML (the document is itself a runtime_env)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "env_vars" and isinstance(value, dict):
                yield from ((str(k), str(v)) for k, v in value.items() if v is not None)
            else:
                yield from _runtime_env_vars(value)
    elif isinstance(document, list):
        for item in document:
            yield from _runtime_env_vars(item)


def _load(text: object) -> object:
    try:
        return yaml.safe_load(str(text)) if text else None
    except yaml.YAMLError:
        return None


def _kuberay_leaks(inventory: Inventory) -> Iterator[tuple[str, Leak]]:
    for kind, path, field in (
        ("RayJob", ("spec",), "runtimeEnvYAML"),
        ("RayCronJob", ("spec", "rayJobTemplate", "spec"), "runtimeEnvYAML"),
        ("RayService", ("spec",), "serveConfigV2"),
    ):
        for obj in inventory.of(kind):
            spec = obj
            for step in path:
                spec = spec.get(step) or {}
            resource = f"{kind}/{namespace_of(obj)}/{name_of(obj)}"
            for name, value in _runtime_env_vars(_load(spec.get(field))):
                for leak in _named(name, value, f"{field} env_vars"):
                    yield resource, leak
            for leak in _argv(str(spec.get("entrypoint") or ""), "entrypoint"):
                yield resource, leak
    for cluster in inventory.kuberay_clusters:
        options = cluster.spec.get("gcsFaultToleranceOptions") or {}
        password = (options.get("redisPassword") or {}).get("value")
        verdict = judge(str(password or ""), by_name=False)
        if verdict:
            resource = f"{cluster.kind}/{cluster.namespace}/{cluster.owner_name}"
            leak = Leak("gcsFaultToleranceOptions", "redisPassword.value", str(password), verdict)
            yield resource, leak


def _config_map_leaks(inventory: Inventory) -> Iterator[tuple[str, Leak]]:
    for cm in inventory.of("ConfigMap"):
        resource = f"ConfigMap/{namespace_of(cm)}/{name_of(cm)}"
        secrets = {name_of(s) for s in inventory.in_namespace("Secret", namespace_of(cm))}
        for key, value in (cm.get("data") or {}).items():
            text = str(value)
            where = f"ConfigMap key {key}"
            if "\n" in text.strip():
                found = list(_config_text(text, where, code=key.endswith(CODE_FILES)))
            elif text in secrets:
                found = []
            else:
                found = _env_leaks(key, text, where) or list(_config_text(text, where, code=False))
            for leak in found:
                yield resource, leak


def _message(leak: Leak) -> str:
    if leak.verdict == "placeholder":
        return f"{leak.where}: {leak.label} is the placeholder {leak.value!r}, a value to set"
    if leak.where.startswith("ConfigMap"):
        return (
            f"{leak.where}: {leak.label} holds a secret; ConfigMaps are not access-controlled "
            "like Secrets"
        )
    return (
        f"{leak.where}: {leak.label} holds a secret in the object itself, readable by anyone "
        "who can read it"
    )


@check(
    code="SEC005",
    severity=Severity.ERROR,
    category=Category.SECURITY,
    summary="A secret is written as a plain value in a pod spec or ConfigMap",
    fix="Move it to a Secret and reference it with valueFrom.secretKeyRef (or envFrom.secretRef).",
)
def plain_secrets(inventory: Inventory):
    seen = set()
    sources = (_workload_leaks, _config_map_leaks, _kuberay_leaks)
    for resource, leak in (hit for source in sources for hit in source(inventory)):
        if (resource, leak) in seen:
            continue
        seen.add((resource, leak))
        separator = ": " if leak.where.startswith("ConfigMap") else "="
        if leak.label.startswith("-"):
            separator = " "
        placeholder = leak.verdict == "placeholder"
        yield Hit(
            resource,
            _message(leak),
            leak.evidence(separator),
            fix=PLACEHOLDER_FIX if placeholder else None,
            severity=Severity.INFO if placeholder else None,
        )
