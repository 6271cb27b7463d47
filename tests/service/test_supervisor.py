"""The supervisor's probes: alive while its loop ticks, ready once a tick reached Ray and Redis."""

from dataclasses import replace

import httpx

from service.processes import free_port
from service.supervisor import Supervisor


def test_health_endpoints_follow_the_loop(settings):
    unreachable_ray = f"http://127.0.0.1:{free_port()}"
    supervisor = Supervisor(replace(settings, ray_dashboard_url=unreachable_ray))
    port = free_port()
    server = supervisor.serve_health(port)
    try:
        supervisor.tick()
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        supervisor.last_success -= 60
        not_ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
        assert not_ready.status_code == 503 and "ConnectError" in not_ready.json()["last_error"]
        supervisor.last_tick -= 60
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 503
    finally:
        server.shutdown()
