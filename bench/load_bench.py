"""Load on the local stack: N jobs submitted by C concurrent clients (one account each), then
every 202 is checked against Redis (exactly one job record, no record nobody was told of) and
the queue is left to drain (every job succeeded, once, with one video).

The clients run in a child process on raw keep-alive HTTP/1.1 streams, so the load generator
does not share the API's interpreter (the local stack serves the API from a thread).

Run: .venv/bin/python bench/load_bench.py [--jobs 10000] [--clients 50] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from service import auth  # noqa: E402
from service.config import Settings  # noqa: E402
from service.keys import account_jobs_key, job_key  # noqa: E402
from service.local_stack import LocalStack  # noqa: E402
from service.polling import wait_until  # noqa: E402
from service.processes import free_port  # noqa: E402
from service.records import ACTIVE_STATES  # noqa: E402

# The least work a job can be: 7 frames of 64x64, 2 steps (Mochi's scheduler divides by
# num_steps // 2, so 1 step fails), no classifier-free guidance.
MINIMAL_JOB = {
    "prompt": "load",
    "num_frames": 7,
    "height": 64,
    "width": 64,
    "num_inference_steps": 2,
    "guidance_scale": 0.0,
}


# --- the clients (child process) ----------------------------------------------------------


async def _client(host, port, key, count, body, results) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    head = [
        "POST /v1/jobs HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Authorization: Bearer {key}",
        f"Content-Length: {len(body)}",
    ]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    for _ in range(count):
        started = time.perf_counter()
        writer.write(request)
        header = await reader.readuntil(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        length = next(int(v.split(":", 1)[1]) for v in lines if v.lower().startswith("content-l"))
        payload = await reader.readexactly(length)
        status = int(lines[0].split()[1])
        results.append((status, time.perf_counter() - started, json.loads(payload).get("id") or ""))
    writer.close()


async def _all_clients(url: str, keys: list[str], jobs: int) -> dict:
    parsed = httpx.URL(url)
    body = json.dumps(MINIMAL_JOB).encode()
    shares = [jobs // len(keys) + (index < jobs % len(keys)) for index in range(len(keys))]
    results: list[tuple[int, float, str]] = []
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _client(parsed.host, parsed.port, key, share, body, results)
            for key, share in zip(keys, shares, strict=True)
        )
    )
    return {"seconds": time.perf_counter() - started, "results": results}


def _client_main(url: str, keys_file: str, jobs: int) -> None:
    keys = json.loads(Path(keys_file).read_text())
    print(json.dumps(asyncio.run(_all_clients(url, keys, jobs))))


# --- the run (parent process) -------------------------------------------------------------


def submit(api_url: str, keys: list[str], jobs: int) -> dict:
    """Submit `jobs` jobs from len(keys) concurrent clients, each on its own connection and
    account; returns latencies, statuses and the accepted ids."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as keys_file:
        keys_file.write(json.dumps(keys))
        keys_file.flush()
        command = [sys.executable, __file__, "clients", api_url, keys_file.name, str(jobs)]
        done = subprocess.run(command, capture_output=True, text=True, check=True, timeout=3600)
    run = json.loads(done.stdout)
    latencies = sorted(latency for _, latency, _ in run["results"])
    statuses: dict[int, int] = {}
    for status, _, _ in run["results"]:
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "submitted": len(run["results"]),
        "seconds": run["seconds"],
        "statuses": statuses,
        "accepted_ids": [job_id for status, _, job_id in run["results"] if status == 202],
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[max(0, int(len(latencies) * 0.99) - 1)],
        "max_ms": 1000 * latencies[-1],
    }


def check_records(client, accepted_ids: list[str], accounts: list[str]) -> dict:
    """Every 202 has exactly one job record, and no account holds a job nobody was told of."""
    pipe = client.pipeline(transaction=False)
    for job_id in accepted_ids:
        pipe.exists(job_key(job_id))
    present = sum(pipe.execute())
    for account in accounts:
        pipe.zrange(account_jobs_key(account), 0, -1)
    recorded = [job_id.decode() for ids in pipe.execute() for job_id in ids]
    return {
        "accepted": len(accepted_ids),
        "distinct_accepted": len(set(accepted_ids)),
        "present": present,
        "recorded": len(recorded),
        "recorded_not_accepted": len(set(recorded) - set(accepted_ids)),
    }


def wait_drained(client, accepted_ids: list[str], timeout: float) -> dict:
    """Wait until no accepted job is queued or running; then count outcomes."""

    def states() -> list[str]:
        pipe = client.pipeline(transaction=False)
        for job_id in accepted_ids:
            pipe.hget(job_key(job_id), "status")
        return [(state or b"").decode() for state in pipe.execute()]

    started = time.monotonic()
    drained = wait_until(
        lambda: not any(s == "queued" or s in ACTIVE_STATES for s in states()), timeout, 1.0
    )
    counts: dict[str, int] = {}
    for state in states():
        counts[state] = counts.get(state, 0) + 1
    return {"drained": drained, "seconds": time.monotonic() - started, "states": counts}


def check_outputs(client, accepted_ids: list[str], output_dir: Path) -> dict:
    """Each job ran once: one attempt, and exactly one video file, the one on its record."""
    pipe = client.pipeline(transaction=False)
    for job_id in accepted_ids:
        pipe.hmget(job_key(job_id), "attempts", "video")
    files = {path.name for path in output_dir.iterdir()}
    by_job: dict[str, int] = {}
    for name in files:
        by_job[name[:32]] = by_job.get(name[:32], 0) + 1
    records = pipe.execute()
    return {
        "single_attempt": sum(attempts == b"1" for attempts, _ in records),
        "video_on_record_exists": sum(
            bool(video) and video.decode() in files for _, video in records
        ),
        "exactly_one_file": sum(by_job.get(job_id) == 1 for job_id in accepted_ids),
    }


def run(
    jobs: int, clients: int, workers: int, drain_timeout: float, base_dir: Path, progress=None
) -> dict:
    """The whole run; `progress` gets the submission figures as soon as they are known (the
    drain that follows takes far longer)."""
    settings = replace(Settings(), workers=workers, lease_seconds=10.0)
    stack = LocalStack(base_dir=base_dir, api_port=free_port(), settings=settings)
    started = time.monotonic()
    stack.start(progress=lambda line: None)
    try:
        client = stack.store().redis
        accounts = [f"load-{index:03d}" for index in range(clients)]
        keys = [auth.add_key(client, account) for account in accounts]
        submission = submit(stack.api_url, keys, jobs)
        accepted = submission.pop("accepted_ids")
        records = check_records(client, accepted, accounts)
        if progress:
            progress(report({"submission": submission, "records": records}, header=False))
        drain = wait_drained(client, accepted, drain_timeout)
        outputs = check_outputs(client, accepted, Path(stack.settings.output_dir))
    finally:
        stack.stop()
    return {
        "jobs": jobs,
        "clients": clients,
        "workers": workers,
        "submission": submission,
        "records": records,
        "drain": drain,
        "outputs": outputs,
        "total_seconds": time.monotonic() - started,
    }


def report(figures: dict, header: bool = True) -> str:
    """The figures as lines of text; only the submission and records lines when that is all
    there is yet."""
    sub, rec = figures["submission"], figures["records"]
    lines = []
    if header:
        lines.append(
            f"{figures['jobs']} jobs from {figures['clients']} concurrent clients (one account "
            f"each), {figures['workers']} tiny-model workers, job = {json.dumps(MINIMAL_JOB)}"
        )
    lines += [
        f"submission: {sub['submitted']} requests in {sub['seconds']:.1f} s "
        f"({sub['submitted'] / sub['seconds']:.0f} req/s), statuses {sub['statuses']}",
        f"submission latency: p50 {sub['p50_ms']:.1f} ms, p99 {sub['p99_ms']:.1f} ms, "
        f"max {sub['max_ms']:.1f} ms",
        f"records: {rec['present']}/{rec['accepted']} accepted ids have a job record "
        f"({rec['distinct_accepted']} distinct); accounts hold {rec['recorded']} jobs, "
        f"{rec['recorded_not_accepted']} not acknowledged by a 202",
    ]
    if "drain" in figures:
        drain, out = figures["drain"], figures["outputs"]
        lines += [
            f"drain: {'drained' if drain['drained'] else 'NOT drained'} in "
            f"{drain['seconds']:.1f} s after the last submission, states {drain['states']}",
            f"outputs: {out['single_attempt']} ran in one attempt, {out['exactly_one_file']} "
            f"have exactly one video file, {out['video_on_record_exists']} have their recorded "
            "video",
            f"total run time (stack start to stop): {figures['total_seconds']:.1f} s",
        ]
    return "\n".join(lines)


def holds(figures: dict) -> bool:
    """The load held: every request accepted, recorded once, drained, ran once."""
    jobs = figures["jobs"]
    rec, out = figures["records"], figures["outputs"]
    return (
        figures["submission"]["statuses"] == {202: jobs}
        and rec["accepted"] == rec["distinct_accepted"] == rec["present"] == rec["recorded"]
        and rec["recorded_not_accepted"] == 0
        and figures["drain"]["drained"]
        and figures["drain"]["states"] == {"succeeded": jobs}
        and out["single_attempt"] == out["exactly_one_file"] == out["video_on_record_exists"]
        and out["exactly_one_file"] == jobs
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "clients":
        _client_main(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--drain-timeout", type=float, default=3600.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mochi-load-") as scratch:
        figures = run(
            args.jobs,
            args.clients,
            args.workers,
            args.drain_timeout,
            Path(scratch),
            progress=lambda text: print(text, flush=True),
        )
    print(report(figures), flush=True)
    print("load held" if holds(figures) else "LOAD NOT HELD")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    sys.exit(0 if holds(figures) else 1)


if __name__ == "__main__":
    main()
