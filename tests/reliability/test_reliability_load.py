"""The load figure of bench/load_bench.py (10,000 jobs, 50 clients), in small: 200 jobs from 20
concurrent clients on the shared stack, with the bench's own checks: every 202 has exactly one
job record, no record lacks its 202, the queue drains, and every job ran once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from service import auth

BENCH = Path(__file__).resolve().parents[2] / "bench" / "load_bench.py"
JOBS, CLIENTS = 200, 20


def load_bench():
    spec = importlib.util.spec_from_file_location("load_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_200_jobs_from_20_clients_each_recorded_once_and_drained(healthy_stack, store):
    bench = load_bench()
    accounts = [f"load-test-{index:02d}" for index in range(CLIENTS)]
    keys = [auth.add_key(store.redis, account) for account in accounts]
    submission = bench.submit(healthy_stack.api_url, keys, JOBS)
    accepted = submission.pop("accepted_ids")
    records = bench.check_records(store.redis, accepted, accounts)
    drain = bench.wait_drained(store.redis, accepted, timeout=240)
    outputs = bench.check_outputs(store.redis, accepted, Path(healthy_stack.settings.output_dir))
    figures = {
        "jobs": JOBS,
        "clients": CLIENTS,
        "workers": healthy_stack.settings.workers,
        "submission": submission,
        "records": records,
        "drain": drain,
        "outputs": outputs,
        "total_seconds": 0.0,
    }
    print(bench.report(figures))
    assert submission["statuses"] == {202: JOBS}
    assert records == {
        "accepted": JOBS,
        "distinct_accepted": JOBS,
        "present": JOBS,
        "recorded": JOBS,
        "recorded_not_accepted": 0,
    }
    assert drain["drained"] and drain["states"] == {"succeeded": JOBS}
    assert outputs == dict.fromkeys(outputs, JOBS)
    assert bench.holds(figures)
