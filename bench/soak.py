"""Soak: does Redis memory stay flat when jobs keep coming and retention keeps deleting them?

Many submissions (default 100,000) go through the real API (service.api on uvicorn, real HTTP
from several concurrent httpx clients, each with its own account and an Idempotency-Key on every
request) into a real Redis (service.processes.RedisServer: password, AOF, maxmemory,
noeviction), with short retention (MOCHI_RESULT_TTL_SECONDS, 5 s by default). No model runs: a
consumer thread claims each job and finishes it at once through the real JobStore (claim +
finish, recording a tiny fake video name; no file is written), and a reaper thread calls
JobStore.reap_expired at the supervisor's interval, as the supervisor does. Finished jobs then
expire, and Redis should hold about retention x rate of them whatever the total.

Printed: Redis used_memory after the first 10,000 submissions (or half of a shorter run) and at
the end, their ratio (the goal: the end within 10% of the first level), submissions/s, and every
non-2xx answer by status.

Run: .venv/bin/python bench/soak.py                      (100,000 submissions)
     .venv/bin/python bench/soak.py --submissions 5000   (a quick run)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.service_bench import start_server  # noqa: E402
from service import auth  # noqa: E402
from service.jobstore import JobStore, video_name  # noqa: E402
from service.processes import RedisServer, free_port, stop_process_group  # noqa: E402

CHECKPOINT = 10_000
GOAL = 0.10  # the end within 10% of the checkpoint's level
# Prompts like users write them, not all ASCII: Redis must hold them as UTF-8.
PROMPT = "A slow pan across a misty harbour at dawn, gulls, fishing boats, 35mm film — café {i}"


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)
    sent: int = 0
    checkpoint_memory: dict | None = None


def redis_memory(client) -> dict:
    info = client.info("memory")
    return {
        "used_memory": info["used_memory"],
        "maxmemory": info["maxmemory"],
        "keys": client.dbsize(),
    }


def key_census(client) -> dict[str, int]:
    """Keys by kind (`mochi:job:*`, `mochi:idempotency:*`), to show what stays when memory
    grows."""
    kinds: Counter = Counter()
    for key in client.scan_iter(count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        parts = name.split(":")
        kinds[":".join(parts[:2]) + (":*" if len(parts) > 2 else "")] += 1
    return dict(kinds.most_common(8))


def consume(store: JobStore, stop: threading.Event, done: Counter) -> None:
    """Finish each job as soon as it is claimed, the way a worker records a success."""
    worker = "soak-consumer"
    while not stop.is_set():
        claim = store.claim(worker)
        if claim is None:
            store.wait_for_work(0.05)
            continue
        store.finish(claim, worker, "succeeded", video=video_name(claim.job_id, claim.attempt))
        done["finished"] += 1


def reap(store: JobStore, stop: threading.Event, interval: float) -> None:
    while not stop.wait(interval):
        store.reap_expired()


async def submit_all(
    url: str, keys: list[str], total: int, checkpoint: int, client_redis, tally: Tally
) -> None:
    numbers = itertools.count()

    async def client_loop(key: str) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            for i in numbers:
                if i >= total:
                    return
                body = {"prompt": PROMPT.format(i=i), "num_frames": 7, "height": 64, "width": 64}
                answer = await http.post(
                    "/v1/jobs", json=body, headers={"Idempotency-Key": f"soak-{i}"}
                )
                tally.statuses[answer.status_code] += 1
                tally.sent += 1
                if tally.sent == checkpoint:
                    tally.checkpoint_memory = redis_memory(client_redis)

    await asyncio.gather(*(client_loop(key) for key in keys))


def soak(total: int, clients: int, ttl: float, reap_interval: float) -> dict:
    checkpoint = min(CHECKPOINT, total // 2)
    with tempfile.TemporaryDirectory() as scratch:
        server = RedisServer(Path(scratch) / "redis", free_port(), password=secrets.token_hex(16))
        server.start()
        client = server.client()
        store = JobStore(client, result_ttl_seconds=ttl)
        keys = [auth.add_key(client, f"soak-{n}") for n in range(clients)]
        env = {
            "MOCHI_REDIS_URL": server.url,
            "MOCHI_REDIS_PASSWORD": server.password,
            "MOCHI_OUTPUT_DIR": scratch,
            "MOCHI_RESULT_TTL_SECONDS": f"{ttl:g}",
            "MOCHI_RATE_LIMIT_PER_MINUTE": str(10 * total),
            "MOCHI_MAX_QUEUED_PER_ACCOUNT": str(10 * total),
            "PYTHONPATH": str(REPO),
        }
        port = free_port()
        api = start_server(["--factory", "service.api:app_from_env"], port, env)
        stop, done, tally = threading.Event(), Counter(), Tally()
        threads = [
            threading.Thread(target=consume, args=(store, stop, done), daemon=True),
            threading.Thread(target=reap, args=(store, stop, reap_interval), daemon=True),
        ]
        try:
            start_memory = redis_memory(client)
            for thread in threads:
                thread.start()
            started = time.perf_counter()
            url = f"http://127.0.0.1:{port}"
            asyncio.run(submit_all(url, keys, total, checkpoint, client, tally))
            elapsed = time.perf_counter() - started
            end_memory = redis_memory(client)
            end_memory["census"] = key_census(client)
            queued = store.queue_length()
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=5)
            stop_process_group(api)
            server.stop()
    return {
        "submissions": total,
        "clients": clients,
        "ttl_seconds": ttl,
        "checkpoint": checkpoint,
        "seconds": elapsed,
        "start": start_memory,
        "at_checkpoint": tally.checkpoint_memory,
        "end": end_memory,
        "finished": done["finished"],
        "queued_at_end": queued,
        "statuses": dict(tally.statuses),
    }


def report(result: dict) -> None:
    mib = 2**20
    first, end = result["at_checkpoint"], result["end"]
    ratio = end["used_memory"] / first["used_memory"]
    print(
        f"{result['submissions']} submissions, {result['clients']} concurrent httpx clients, "
        f"retention {result['ttl_seconds']:g} s, {result['seconds']:.1f} s"
    )
    print(f"submissions/s: {result['submissions'] / result['seconds']:.0f}")
    print(
        f"Redis used_memory at start: {result['start']['used_memory'] / mib:.2f} MiB "
        f"({result['start']['keys']} keys)"
    )
    print(
        f"Redis used_memory after {result['checkpoint']}: {first['used_memory'] / mib:.2f} MiB "
        f"({first['keys']} keys)"
    )
    print(
        f"Redis used_memory at the end: {end['used_memory'] / mib:.2f} MiB ({end['keys']} keys; "
        f"maxmemory {end['maxmemory'] / mib:.0f} MiB)"
    )
    print(f"keys at the end by kind: {end['census']}")
    verdict = "within" if abs(ratio - 1) <= GOAL else "NOT within"
    print(f"end / after {result['checkpoint']}: {ratio:.3f} ({verdict} {GOAL:.0%})")
    print(f"jobs finished by the consumer: {result['finished']}; still queued at the end: "
          f"{result['queued_at_end']}")  # fmt: skip
    refused = {status: n for status, n in result["statuses"].items() if not 200 <= status < 300}
    print(f"non-2xx answers by status: {refused or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    parser.add_argument("--ttl", type=float, default=5.0, help="MOCHI_RESULT_TTL_SECONDS")
    parser.add_argument(
        "--reap-interval", type=float, default=2.0, help="the supervisor's reaper interval, s"
    )
    args = parser.parse_args()
    if args.submissions < 2 or args.clients < 1 or args.ttl <= 0 or args.reap_interval <= 0:
        parser.error(
            "--submissions must be at least 2, --clients at least 1, --ttl and --reap-interval "
            "above 0"
        )
    report(soak(args.submissions, args.clients, args.ttl, args.reap_interval))


if __name__ == "__main__":
    main()
