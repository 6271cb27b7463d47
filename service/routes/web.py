"""The web page: plain HTML, CSS and JavaScript served by the API itself, no build step.

The page talks to the same /v1 API as every other client, with the key the user signs in with
(kept in the tab's sessionStorage). Parameter limits come from `GenerationParams`, so the form
shows exactly what the API enforces.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from service.params import FRAME_STEP, SIDE_MULTIPLE, GenerationParams

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
WEB_PATH = "/web"
# Everything from this origin; videos are played from blob: URLs fetched with the key.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# What the schema cannot say: the form of the values the validators accept.
EXTRA_RULES = {
    "num_frames": {"step": FRAME_STEP, "rule": f"of the form {FRAME_STEP}k+1"},
    "height": {"step": SIDE_MULTIPLE, "rule": f"a multiple of {SIDE_MULTIPLE}"},
    "width": {"step": SIDE_MULTIPLE, "rule": f"a multiple of {SIDE_MULTIPLE}"},
}


class PageFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope):
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response


router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse(WEB_PATH + "/", status_code=307)


@router.get(WEB_PATH + "/parameters.json")
def parameters() -> dict[str, Any]:
    return {"parameters": parameter_limits()}


# After the routes above: /web/parameters.json is answered before the files are looked in.
router.mount(WEB_PATH, PageFiles(directory=STATIC_DIR, html=True), name="web")


@functools.cache
def parameter_limits() -> dict[str, dict[str, Any]]:
    """Per field: type, default, minimum/maximum (or max_length) and any extra rule."""
    schema = GenerationParams.model_json_schema()
    limits = {}
    for name, prop in schema["properties"].items():
        options = prop.get("anyOf", [prop])
        typed = next(option for option in options if option.get("type") != "null")
        field = {"type": typed["type"], "default": prop.get("default")}
        for key in ("minimum", "maximum", "minLength", "maxLength"):
            if key in typed:
                field[key] = typed[key]
        field["required"] = name in schema.get("required", [])
        field.update(EXTRA_RULES.get(name, {}))
        field["hint"] = _hint(field)
        limits[name] = field
    return limits


def _hint(field: dict[str, Any]) -> str:
    """The limits in words, exact (a seed's maximum is beyond a JavaScript number)."""
    parts = []
    if "minimum" in field:
        parts.append(f"{_number(field['minimum'])}–{_number(field['maximum'])}")
    elif "maxLength" in field:
        parts.append(f"up to {field['maxLength']} characters")
    if "rule" in field:
        parts.append(field["rule"])
    if field["required"]:
        parts.append("required")
    elif field["default"] is not None:
        parts.append(f"default {_number(field['default'])}")
    else:
        parts.append("optional")
    return "; ".join(parts)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"
