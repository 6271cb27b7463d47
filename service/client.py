"""The API's HTTP client, and the `mochi submit|status|list|cancel|download` commands.

The API URL and key come from --url/--key, else MOCHI_API_URL/MOCHI_API_KEY, else the address
file `mochi local` writes (.mochi/local.json, or --dir). The key of that file is only sent to
that file's URL.

Exit codes:
  0   success
  1   the job ended failed or canceled (submit --wait), or an unexpected answer
  2   usage: bad arguments, no API URL or key configured, or a URL that is not http(s)://HOST
  3   the API cannot be reached (connection refused, DNS, timeout)
  4   401: missing or unknown API key
  5   404: no such job for this key
  6   invalid parameters: refused before sending, or by the API (422); each field's problem
      is printed
  7   409: the job is in the wrong state (cancel an ended job, download an unfinished one)
  8   429: rate limit or queued-job limit reached (Retry-After is printed)
  9   503 or another 5xx: the service is unavailable
  10  submit --wait gave up after --timeout seconds (the job goes on)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

from service.params import (
    FRAME_STEP,
    MAX_FRAMES,
    MAX_SIDE,
    MIN_FRAMES,
    MIN_SIDE,
    SIDE_MULTIPLE,
    GenerationParams,
)

EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_AUTH, EXIT_NOT_FOUND, EXIT_INVALID, EXIT_CONFLICT = 4, 5, 6, 7
EXIT_RATE_LIMITED, EXIT_UNAVAILABLE, EXIT_WAIT_TIMEOUT = 8, 9, 10
EXIT_BY_STATUS = {
    401: EXIT_AUTH,
    404: EXIT_NOT_FOUND,
    409: EXIT_CONFLICT,
    422: EXIT_INVALID,
    429: EXIT_RATE_LIMITED,
}
ENDED = ("succeeded", "failed", "canceled")
POLL_SECONDS = 0.25
HTTP_TIMEOUT_SECONDS = 30.0


class ClientError(Exception):
    """Anything a command reports as one line (or a few) and an exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class ApiError(ClientError):
    """A refusal from the API: its status, message, per-field problems and Retry-After."""

    def __init__(
        self,
        status: int,
        error: str,
        fields: list[dict[str, str]] | None = None,
        retry_after: str | None = None,
    ):
        self.status, self.error = status, error
        self.fields, self.retry_after = fields or [], retry_after
        otherwise = EXIT_UNAVAILABLE if status >= 500 else EXIT_JOB_FAILED
        super().__init__(self.describe(), EXIT_BY_STATUS.get(status, otherwise))

    def describe(self) -> str:
        lines = [f"{self.error} (HTTP {self.status})"]
        lines += [f"  {problem['field']}: {problem['message']}" for problem in self.fields]
        if self.retry_after:
            lines.append(f"  retry after {self.retry_after} s")
        if self.status == 401:
            lines.append("  pass --key, set MOCHI_API_KEY, or create one with `mochi keys create`")
        return "\n".join(lines)


@dataclass(frozen=True)
class Connection:
    url: str
    key: str


def resolve_connection(
    url: str | None, key: str | None, state_dir: Path, environ: Mapping[str, str] = os.environ
) -> Connection:
    """Flags, then environment, then the local stack's address file."""
    source = "--url" if url else "MOCHI_API_URL"
    url = url or environ.get("MOCHI_API_URL") or None
    key = key or environ.get("MOCHI_API_KEY") or None
    if url is None or key is None:
        from service.local_stack import read_address_file

        try:
            local = read_address_file(state_dir)
        except (FileNotFoundError, json.JSONDecodeError):
            local = {}
        if url is None:
            url = local.get("api_url")
            source = str(state_dir / "local.json")
        if key is None and url == local.get("api_url"):
            key = local.get("api_key")
    if not url:
        raise ClientError(
            "no API URL: pass --url, set MOCHI_API_URL, or start `mochi local` "
            f"(which writes {state_dir / 'local.json'})",
            EXIT_USAGE,
        )
    check_api_url(url, source)
    if not key:
        raise ClientError(f"no API key for {url}: pass --key or set MOCHI_API_KEY", EXIT_USAGE)
    return Connection(url.rstrip("/"), key)


def check_api_url(url: str, source: str) -> None:
    """An http(s) URL with a host, or a usage error naming where the URL came from."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        problem = str(error)
    else:
        problem = _url_problem(url, parsed)
    if problem:
        raise ClientError(
            f"{source} {url!r} is not an API URL: {problem} "
            "(expected http(s)://HOST[:PORT], e.g. http://127.0.0.1:8000)",
            EXIT_USAGE,
        )


def _url_problem(url: str, parsed: httpx.URL) -> str | None:
    if "://" not in url:
        return "no scheme"
    if parsed.scheme not in ("http", "https"):
        return f"scheme {parsed.scheme!r} is not http or https"
    if not parsed.host:
        return "no host"
    if parsed.port is not None and not 0 < parsed.port < 65536:
        return f"port {parsed.port} is not in 1-65535"
    return None


class MochiClient:
    def __init__(self, connection: Connection, timeout: float = HTTP_TIMEOUT_SECONDS):
        self.url = connection.url
        self.http = httpx.Client(
            base_url=connection.url,
            headers={"Authorization": f"Bearer {connection.key}"},
            timeout=timeout,
        )

    def __enter__(self) -> MochiClient:
        return self

    def __exit__(self, *exc) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException as error:
            raise ClientError(
                f"the API at {self.url} did not answer in time: {error}", EXIT_UNREACHABLE
            ) from None
        except httpx.TransportError as error:
            raise ClientError(
                f"cannot reach the API at {self.url}: {error or type(error).__name__}"
                " (is `mochi local` running, or is --url right?)",
                EXIT_UNREACHABLE,
            ) from None
        if response.is_success:
            return response
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        raise ApiError(
            status=response.status_code,
            error=str(body.get("error") or response.reason_phrase or "error"),
            fields=body.get("fields") or [],
            retry_after=response.headers.get("Retry-After"),
        )

    def submit(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/jobs", json=params).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/jobs/{job_id}").json()

    def jobs(self, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        return self._request("GET", "/v1/jobs", params={"limit": limit, "offset": offset}).json()

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/jobs/{job_id}/cancel").json()

    def download(self, job_id: str, target: Path) -> Path:
        """The MP4, written under a temporary name then renamed into place."""
        partial = target.with_name(target.name + ".partial")
        response = self._request("GET", f"/v1/jobs/{job_id}/video")
        try:
            partial.write_bytes(response.content)
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return target

    def wait(
        self,
        job: dict[str, Any],
        on_update: Callable[[dict[str, Any]], None],
        timeout: float | None = None,
        interval: float = POLL_SECONDS,
    ) -> dict[str, Any]:
        """Poll until the job ends; waits out 429/503 answers as their Retry-After asks."""
        deadline = None if timeout is None else time.monotonic() + timeout
        on_update(job)
        while job["status"] not in ENDED:
            pause = interval
            if deadline is not None and time.monotonic() + pause > deadline:
                raise ClientError(
                    f"job {job['id']} still {job['status']} after {timeout:g}s; "
                    f"`mochi status {job['id']}` follows it",
                    EXIT_WAIT_TIMEOUT,
                )
            time.sleep(pause)
            try:
                job = self.job(job["id"])
            except ApiError as error:
                if error.status not in (429, 503):
                    raise
                time.sleep(_seconds(error.retry_after))
                continue
            on_update(job)
        return job


def _seconds(retry_after: str | None) -> float:
    try:
        return max(0.0, float(retry_after or 1))
    except ValueError:
        return 1.0


# ---- output ---------------------------------------------------------------------------------


def describe_progress(job: dict[str, Any]) -> str:
    step, total = job["progress"]["step"], job["progress"]["total"]
    if job["status"] == "succeeded":
        step = total
    percent = 100 * step // total if total else 0
    return f"{job['status']} {step}/{total} steps ({percent}%)"


class ProgressReport:
    """A rich progress bar on a terminal; elsewhere one line per change of state or 10%."""

    def __init__(self, console: Console):
        self.console = console
        self.bar: Progress | None = None
        self.task = None
        self.last_line = ""

    def __enter__(self) -> ProgressReport:
        if self.console.is_terminal:
            self.bar = Progress(
                TextColumn("{task.description:<9}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.completed}/{task.total} steps"),
                console=self.console,
            )
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, job: dict[str, Any]) -> None:
        step, total = job["progress"]["step"], job["progress"]["total"]
        if job["status"] == "succeeded":
            step = total
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task(job["status"], total=total)
            self.bar.update(self.task, completed=step, description=job["status"])
            return
        tenth = 10 * step // total if total else 0
        line = f"{job['status']}:{tenth}"
        if line != self.last_line:
            self.last_line = line
            self.console.print(f"job {job['id']}: {describe_progress(job)}", highlight=False)


def print_job(job: dict[str, Any]) -> None:
    params = job["parameters"]
    rows = [
        ("id", job["id"]),
        ("status", job["status"]),
        ("progress", describe_progress(job).split(" ", 1)[1]),
        ("prompt", params["prompt"]),
        (
            "size",
            f"{params['num_frames']} frames, {params['width']}x{params['height']}, "
            f"{params['num_inference_steps']} steps",
        ),
        ("attempts", job["attempts"]),
        ("error", job["error"]),
        ("created", job["created_at"]),
        ("started", job["started_at"]),
        ("finished", job["finished_at"]),
        ("video", job["video_url"]),
    ]
    for name, value in rows:
        if value not in (None, ""):
            print(f"{name + ':':<10} {value}")


def print_jobs(page: dict[str, Any], offset: int) -> None:
    jobs = page["jobs"]
    if not jobs:
        print("no jobs" if page["total"] == 0 else f"no jobs at offset {offset}")
        return
    print(f"{'ID':<32}  {'STATUS':<9}  {'PROGRESS':<15}  {'CREATED':<20}  PROMPT")
    for job in jobs:
        progress = describe_progress(job).split(" ", 1)[1].split(" steps")[0]
        prompt = job["parameters"]["prompt"].replace("\n", " ")
        prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
        created = (job["created_at"] or "")[:19]
        print(f"{job['id']:<32}  {job['status']:<9}  {progress:<15}  {created:<20}  {prompt}")
    shown = f"{offset + 1}-{offset + len(jobs)} of {page['total']}"
    more = f"; next: --offset {page['next_offset']}" if page["next_offset"] is not None else ""
    print(f"jobs {shown}, newest first{more}")


# ---- commands -------------------------------------------------------------------------------

PARAMETER_FLAGS = {
    "frames": "num_frames",
    "height": "height",
    "width": "width",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "seed": "seed",
    "negative": "negative_prompt",
}
FLAG_OF_FIELD = {name: flag for flag, name in PARAMETER_FLAGS.items()}


def _client(args) -> MochiClient:
    return MochiClient(resolve_connection(args.url, args.key, Path(args.dir)))


def submitted_params(args) -> dict[str, Any]:
    """The request body, checked with the API's own model so that no request is sent in vain."""
    params = {"prompt": args.prompt}
    for flag, name in PARAMETER_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            params[name] = value
    try:
        GenerationParams.model_validate(params)
    except ValidationError as error:
        raise ClientError(describe_invalid(error), EXIT_INVALID) from None
    return params


def describe_invalid(error: ValidationError) -> str:
    lines = ["invalid parameters, nothing was sent:"]
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        flag = FLAG_OF_FIELD.get(field)
        name = field if flag is None else f"--{flag}" if flag == field else f"--{flag} ({field})"
        lines.append(f"  {name}: {problem['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def cmd_submit(args) -> int:
    params = submitted_params(args)
    errors = Console(stderr=True)
    with _client(args) as client:
        job = client.submit(params)
        print(job["id"], flush=True)
        if not (args.wait or args.out):
            return EXIT_OK
        with ProgressReport(errors) as report:
            job = client.wait(job, report.update, timeout=args.timeout)
        if job["status"] != "succeeded":
            errors.print(f"job {job['id']} {job['status']}: {job['error']}", highlight=False)
            return EXIT_JOB_FAILED
        if args.out:
            print(client.download(job["id"], Path(args.out)))
    return EXIT_OK


def cmd_status(args) -> int:
    with _client(args) as client:
        job = client.job(args.job_id)
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        print_job(job)
    return EXIT_OK


def cmd_list(args) -> int:
    with _client(args) as client:
        page = client.jobs(args.limit, args.offset)
    if args.json:
        print(json.dumps(page, indent=2))
    else:
        print_jobs(page, args.offset)
    return EXIT_OK


def cmd_cancel(args) -> int:
    with _client(args) as client:
        job = client.cancel(args.job_id)
    if job["status"] == "canceled":
        print(f"job {job['id']} canceled")
    else:
        print(f"job {job['id']} is {job['status']}; it stops at its next step")
    return EXIT_OK


def cmd_download(args) -> int:
    target = Path(args.out or f"{args.job_id}.mp4")
    with _client(args) as client:
        print(client.download(args.job_id, target))
    return EXIT_OK


def run_command(command: Callable[[argparse.Namespace], int], args, prog: str) -> int:
    """A command's ClientError as its message (plus where help is, for usage) and exit code."""
    try:
        return command(args)
    except ClientError as error:
        hint = f" (see `{prog} --help`)" if error.exit_code == EXIT_USAGE else ""
        print(f"{prog}: {error}{hint}", file=sys.stderr)
        return error.exit_code


def runner(command: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser):
    return lambda args: run_command(command, args, parser.prog)


def _connection_flags() -> argparse.ArgumentParser:
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--url", help="API URL (default: $MOCHI_API_URL, else the local stack)")
    flags.add_argument("--key", help="API key (default: $MOCHI_API_KEY, else the local stack)")
    flags.add_argument(
        "--dir", default=".mochi", help="local stack state directory (default .mochi)"
    )
    return flags


def _default(name: str):
    return GenerationParams.model_fields[name].default


def add_client_commands(commands) -> None:
    """Register submit, status, list, cancel and download on `mochi`'s subcommands."""
    parents = [_connection_flags()]
    shared = {
        "parents": parents,
        "epilog": __doc__[__doc__.index("Exit codes:") :],
        "formatter_class": argparse.RawDescriptionHelpFormatter,
    }

    submit = commands.add_parser("submit", help="submit a prompt; --wait follows it", **shared)
    submit.add_argument("prompt")
    submit.add_argument(
        "--frames",
        type=int,
        help=f"{MIN_FRAMES}-{MAX_FRAMES}, of the form {FRAME_STEP}k+1 "
        f"(default {_default('num_frames')})",
    )
    sides = f"{MIN_SIDE}-{MAX_SIDE}, a multiple of {SIDE_MULTIPLE}"
    submit.add_argument("--height", type=int, help=f"{sides} (default {_default('height')})")
    submit.add_argument("--width", type=int, help=f"{sides} (default {_default('width')})")
    submit.add_argument(
        "--steps", type=int, help=f"inference steps (default {_default('num_inference_steps')})"
    )
    submit.add_argument(
        "--guidance", type=float, help=f"guidance scale (default {_default('guidance_scale')})"
    )
    submit.add_argument("--seed", type=int)
    submit.add_argument("--negative", metavar="PROMPT", help="negative prompt")
    submit.add_argument("--wait", action="store_true", help="show progress until the job ends")
    submit.add_argument("--out", metavar="FILE", help="save the video here (implies --wait)")
    submit.add_argument(
        "--timeout", type=float, help="give up waiting after this many seconds (exit 10)"
    )
    submit.set_defaults(run=runner(cmd_submit, submit))

    status = commands.add_parser("status", help="show one job", **shared)
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true", help="print the API's JSON")
    status.set_defaults(run=runner(cmd_status, status))

    listing = commands.add_parser("list", help="list your jobs, newest first", **shared)
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true", help="print the API's JSON")
    listing.set_defaults(run=runner(cmd_list, listing))

    cancel = commands.add_parser("cancel", help="cancel a queued or running job", **shared)
    cancel.add_argument("job_id")
    cancel.set_defaults(run=runner(cmd_cancel, cancel))

    download = commands.add_parser("download", help="save a finished job's MP4", **shared)
    download.add_argument("job_id")
    download.add_argument("--out", metavar="FILE", help="target file (default ID.mp4)")
    download.set_defaults(run=runner(cmd_download, download))
