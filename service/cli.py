"""`mochi`: the service's command (local stack, demo, API, pool driver, supervisor, keys)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path

from service.client import add_client_commands
from service.config import API_PORT, SUPERVISOR_HEALTH_PORT, Settings, SettingsError
from service.key_commands import add_key_commands
from service.version import package_version

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class UsageErrorParser(argparse.ArgumentParser):
    """Usage errors as one line, exit 2, and where help is; subcommands' parsers inherit it."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as error:
        raise SystemExit(f"mochi: {error}") from None


def cmd_local(args) -> int:
    from service.local_stack import LocalStack

    stack = LocalStack(
        base_dir=Path(args.dir),
        api_port=args.port,
        settings=Settings(workers=args.workers, lease_seconds=args.lease_seconds),
    )
    stack.start()
    print(f"web page   {stack.api_url}/web/")
    print(f"api key    {stack.api_key}")
    print(f"addresses  {stack.address_file}")
    print("Ctrl-C stops everything this command started.")
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    stopping.wait()
    print("stopping...")
    stack.stop()
    return EXIT_OK


def cmd_demo(args) -> int:
    from service.demo import run_demo

    return run_demo(Path(args.dir), args.prompt)


def cmd_api(args) -> int:
    import uvicorn

    from service.api import create_app

    app = create_app(_settings())
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return EXIT_OK


def cmd_pool(args) -> int:
    from service.pool import run_pool

    run_pool(_settings())
    return EXIT_OK


def cmd_supervisor(args) -> int:
    from service.supervisor import Supervisor

    supervisor = Supervisor(_settings())
    supervisor.serve_health(args.health_port)
    supervisor.run(args.interval)
    return EXIT_OK


def cmd_fetch_model(args) -> int:
    from huggingface_hub import snapshot_download

    settings = _settings()
    if settings.model == "tiny":
        print("model is `tiny`: built in code, nothing to fetch")
        return EXIT_OK
    path = snapshot_download(settings.model, cache_dir=settings.model_cache_dir or None)
    print(f"{settings.model} cached at {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = UsageErrorParser(prog="mochi", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mochi {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    local = commands.add_parser("local", help="run the embedded local stack until Ctrl-C")
    local.add_argument("--dir", default=".mochi", help="state directory (default .mochi)")
    local.add_argument("--port", type=int, default=API_PORT, help="API port (default 8000)")
    local.add_argument("--workers", type=int, default=1, help="worker actors (default 1)")
    local.add_argument("--lease-seconds", type=float, default=5.0)
    local.set_defaults(run=cmd_local)

    demo = commands.add_parser("demo", help="start the local stack, make one video, stop")
    demo.add_argument("--dir", default=".mochi")
    demo.add_argument("--prompt", default="a red panda eating bamboo in the snow")
    demo.set_defaults(run=cmd_demo)

    api = commands.add_parser("api", help="serve the HTTP API (settings from MOCHI_* env)")
    api.add_argument("--host", default="0.0.0.0")
    api.add_argument("--port", type=int, default=API_PORT)
    api.set_defaults(run=cmd_api)

    pool = commands.add_parser("pool", help="the pool driver; runs on the Ray cluster")
    pool.set_defaults(run=cmd_pool)

    supervisor = commands.add_parser("supervisor", help="keep the pool driver running; reap")
    supervisor.add_argument("--interval", type=float, default=2.0)
    supervisor.add_argument(
        "--health-port", type=int, default=SUPERVISOR_HEALTH_PORT, help="/healthz and /readyz"
    )
    supervisor.set_defaults(run=cmd_supervisor)

    add_key_commands(commands)

    fetch = commands.add_parser("fetch-model", help="download MOCHI_MODEL into the cache")
    fetch.set_defaults(run=cmd_fetch_model)

    add_client_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
