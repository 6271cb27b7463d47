"""`make demo`: start the local stack, make one video over HTTP with a progress bar, stop."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from service.config import Settings
from service.local_stack import LocalStack
from service.processes import free_port
from service.video import count_frames

DEMO_PARAMS = {"num_frames": 13, "height": 64, "width": 96, "num_inference_steps": 16}
TIMEOUT_SECONDS = 300


def run_demo(base_dir: Path, prompt: str) -> int:
    console = Console()
    stack = LocalStack(base_dir=base_dir, api_port=free_port(), settings=Settings(workers=1))
    console.print("[bold]starting the local stack[/] (Redis, Ray, pool with the tiny model, API)")
    stack.start(progress=lambda line: console.print("  " + line))
    console.print(f"  web page   {stack.api_url}/web/ (sign in with API key {stack.api_key})")
    try:
        path = _make_video(console, stack, prompt, base_dir.resolve() / "demo.mp4")
    finally:
        console.print("stopping the local stack")
        stack.stop()
    if path is None:
        return 1
    console.print(f"[green]saved[/] {path} ({count_frames(path)} frames)")
    return 0


def _make_video(console: Console, stack: LocalStack, prompt: str, target: Path) -> Path | None:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(base_url=stack.api_url, headers=headers, timeout=30) as http:
        response = http.post("/v1/jobs", json={"prompt": prompt, **DEMO_PARAMS})
        if response.status_code != 202:
            console.print(f"[red]submission refused ({response.status_code})[/]: {response.text}")
            return None
        job = response.json()
        console.print(f"submitted job {job['id']}: {prompt!r}")
        job = _follow(http, job)
        if job["status"] != "succeeded":
            console.print(f"[red]job {job['status']}[/]: {job['error']}")
            return None
        target.write_bytes(http.get(job["video_url"]).content)
    return target


def _follow(http: httpx.Client, job: dict) -> dict:
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
    ]
    deadline = time.monotonic() + TIMEOUT_SECONDS
    with Progress(*columns) as progress:
        bar = progress.add_task("queued", total=job["progress"]["total"])
        while job["status"] not in ("succeeded", "failed", "canceled"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job['id']} not done after {TIMEOUT_SECONDS}s")
            time.sleep(0.1)
            job = http.get(f"/v1/jobs/{job['id']}").json()
            progress.update(bar, completed=job["progress"]["step"], description=job["status"])
    return job
