"""The cost of durability: POST /v1/jobs through the real API into a real Redis with
`appendfsync everysec` and with `appendfsync always`, alternating rounds in one run.

Run: .venv/bin/python bench/durability_bench.py --requests 2000 --concurrency 16
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.service_bench import ROUNDS, _median_round, run_round  # noqa: E402
from service import auth  # noqa: E402
from service.config import APPENDFSYNC_MODES  # noqa: E402
from service.processes import RedisServer, free_port  # noqa: E402

API = ["--factory", "service.api:app_from_env"]


def start_redis(scratch: Path, mode: str) -> RedisServer:
    password = secrets.token_urlsafe(16)
    return RedisServer(scratch / mode, free_port(), password=password, appendfsync=mode).start()


def api_env(server: RedisServer, output_dir: Path, requests: int) -> dict[str, str]:
    return {
        "MOCHI_REDIS_URL": server.url,
        "MOCHI_REDIS_PASSWORD": server.password,
        "MOCHI_OUTPUT_DIR": str(output_dir),
        "MOCHI_RATE_LIMIT_PER_MINUTE": str(10 * requests),
        "MOCHI_MAX_QUEUED_PER_ACCOUNT": str(10 * requests),
        "PYTHONPATH": str(REPO),
    }


def bench(requests: int, concurrency: int, rounds: int) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as scratch:
        servers = {mode: start_redis(Path(scratch), mode) for mode in APPENDFSYNC_MODES}
        try:
            runs: dict[str, list[dict]] = {mode: [] for mode in servers}
            keys = {
                mode: auth.add_key(server.client(), "bench") for mode, server in servers.items()
            }
            # Alternate the modes round by round: a shared machine drifts between runs.
            for _ in range(rounds):
                for mode, server in servers.items():
                    env = api_env(server, Path(scratch), requests)
                    runs[mode].append(run_round(API, env, keys[mode], requests, concurrency))
            results = {mode: _median_round(mode_runs) for mode, mode_runs in runs.items()}
            for mode, result in results.items():
                result["fsync_policy"] = servers[mode].client().config_get("appendfsync")
                result["accepted"] = len(result.pop("accepted_ids"))
        finally:
            for server in servers.values():
                server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    results = bench(args.requests, args.concurrency, args.rounds)
    print(
        f"POST /v1/jobs, {args.requests} requests x {args.rounds} alternating rounds per mode, "
        f"{args.concurrency} concurrent keep-alive clients (median round shown)"
    )
    print(f"{'appendfsync':<13}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    for mode, result in results.items():
        print(
            f"{mode:<13}{result['requests_per_second']:>9.0f}{result['p50_ms']:>9.1f}"
            f"{result['p99_ms']:>9.1f}  rounds {result['all_requests_per_second']} req/s, "
            f"statuses {result['statuses']}"
        )
    ratio = results["always"]["requests_per_second"] / results["everysec"]["requests_per_second"]
    print(f"throughput always/everysec: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
