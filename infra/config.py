"""Loading the stack configuration: every setting Pulumi hands the program (strings) parsed into
`StackConfig` (infra/config_model.py) and validated (infra/validation.py) before any resource
exists. Defaults and descriptions live once, in Pulumi.yaml.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import fields

from infra.config_model import (
    PROJECT,
    ConfigProblem,
    RequiredValue,
    StackConfig,
    UnknownKey,
    config_key,
)
from infra.validation import validate
from service.config import APPENDFSYNC_MODES


def _folded(key: str) -> str:
    """The name of a key as typos compare it: `api_image`, `APIImage` and `apiImage` are equal."""
    return key.partition(":")[2].replace("_", "").replace("-", "").lower()


SET_HINT = (
    "Set a value with `pulumi config set KEY VALUE --stack STACK` "
    "(or `python -m infra render ... --config KEY=VALUE`)."
)


class InvalidConfig(ValueError):
    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        lines = [f"{len(problems)} problem(s) in the stack configuration:"]
        lines += [f"  - {problem}" for problem in problems]
        if any(isinstance(problem, RequiredValue) for problem in problems):
            lines.append(SET_HINT)
        super().__init__("\n".join(lines))


def load(get: Callable[[str], str | None], keys: Iterable[str] = ()) -> StackConfig:
    """Parse every setting through `get` (pulumi.Config or a dict), then validate.

    `keys` are all the keys the stack sets; those of this project no setting reads are reported
    with the rest. Every problem is raised at once.
    """
    values: dict[str, object] = {}
    problems: list[ConfigProblem] = unknown_keys(keys)
    parse_problems: list[ConfigProblem] = []
    for setting in fields(StackConfig):
        key = config_key(setting.name)
        raw = get(key)
        if raw is None:
            parse_problems.append(
                RequiredValue(key, None, "declare it in Pulumi.yaml with a default, or set it")
            )
            continue
        try:
            values[setting.name] = _parse(raw, setting.type)
        except ValueError:
            parse_problems.append(ConfigProblem(key, raw, f"is not a valid {setting.type}"))
    if parse_problems:
        raise InvalidConfig(problems + parse_problems)
    config = StackConfig(**values)

    problems += validate(config) + choice_problems(config)
    if problems:
        raise InvalidConfig(problems)
    return config


def choice_problems(config: StackConfig) -> list[ConfigProblem]:
    if config.redis_appendfsync in APPENDFSYNC_MODES:
        return []
    message = f"must be one of {', '.join(APPENDFSYNC_MODES)}"
    return [ConfigProblem(config_key("redis_appendfsync"), config.redis_appendfsync, message)]


def unknown_keys(keys: Iterable[str]) -> list[ConfigProblem]:
    """Keys in the `mochi:` namespace that are no setting, each with the nearest known key."""
    known = {_folded(key): key for key in map(config_key, (s.name for s in fields(StackConfig)))}
    problems = []
    for key in sorted(set(keys)):
        namespace, _, _ = key.partition(":")
        if namespace == PROJECT and key not in known.values():
            problems.append(UnknownKey(key, None, _nearest(key, known)))
    return problems


def _nearest(key: str, known: dict[str, str]) -> str:
    close = difflib.get_close_matches(_folded(key), list(known), n=1, cutoff=0.6)
    if close:
        return f"did you mean {known[close[0]]}?"
    return "remove it, or see the keys Pulumi.yaml declares"


def _parse(raw: str, kind: str) -> object:
    if kind == "int":
        return int(str(raw))
    if kind == "float":
        return float(str(raw))
    if kind == "bool":
        text = str(raw).lower()
        if text not in ("true", "false"):
            raise ValueError(raw)
        return text == "true"
    return str(raw)
