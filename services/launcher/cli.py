"""The `mintpipe` command.

  mintpipe up [--renderers N] [--pinners M] [--status-replicas K]   run the whole system until Ctrl-C
  mintpipe demo [--renderers N] [--settings F]  start it, run one example job end to end, stop
  mintpipe render SETTINGS.json --out DIR     render one job locally, no broker
  mintpipe submit SETTINGS.json [--wallet W] [--wait]   submit a job (a progress bar until it ends)
  mintpipe status ID [--wait-minted] | watch ID | jobs [--stage] [--wallet] [--since]   jobs from the bridge
                                              (status: the job as JSON, with token id, tx hash, block once
                                              minted; `mintpipe job ID` is the same verb)
  mintpipe admin dead-letters|replay|retry|cancel|reverify   operator routes (MINTPIPE_ADMIN_TOKEN)
  mintpipe mint ID --tx-hash 0x… | --relay    report a mint, or have the service relay it
  mintpipe pinata-emulator [--port 3001]      a local Pinata API for development without an account
  mintpipe health HOST:PORT [--service NAME] [--timeout S]   a gRPC health check (exit 0 when SERVING)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

DEFAULT_SETTINGS = {"seed": 2026}


def _layout_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--renderers", type=int, default=1, help="renderer replicas (default 1)")
    parser.add_argument("--pinners", type=int, default=1, help="pinner replicas (default 1)")
    parser.add_argument("--minters", type=int, default=1, help="minter replicas, the chain stage (default 1; one "
                        "sends relays and one watches at a time, the others take over when it goes)")
    parser.add_argument("--status-replicas", type=int, default=1,
                        help="status replicas, bridges at --http-port, +1, ... (more than 1 needs "
                        "MINTPIPE_DATABASE_URL=postgresql://...)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MINTPIPE_DATA_DIR", "data")))
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("MINTPIPE_HTTP_PORT", "8080")))
    parser.add_argument("--port-base", type=int, default=int(os.environ.get("MINTPIPE_PORT_BASE", "50050")),
                        help="gRPC ports are derived from it (gateway +1, status +2, replicas +100/+200)")


def _postgres_configured() -> bool:
    from mintpipe.db.replica import postgres_dsn

    return postgres_dsn(os.environ.get("STATUS_DATABASE_URL") or os.environ.get("MINTPIPE_DATABASE_URL")) is not None


async def _run(args: argparse.Namespace, demo: bool) -> int:
    from launcher.supervisor import Layout, Supervisor, build_specs

    if not 1 <= args.renderers <= 64 or not 1 <= args.pinners <= 64:
        print("--renderers and --pinners: 1-64", file=sys.stderr)
        return 2
    if not 1 <= args.minters <= 16:
        print("--minters: 1-16", file=sys.stderr)
        return 2
    if args.minters > 1 and not _postgres_configured():
        print("--minters: more than 1 needs MINTPIPE_DATABASE_URL set to a postgresql:// DSN (the replicas share "
              "their relays, nonces and caps in one database)", file=sys.stderr)
        return 2
    if not 1 <= args.status_replicas <= 16:
        print("--status-replicas: 1-16", file=sys.stderr)
        return 2
    if args.status_replicas > 1 and not _postgres_configured():
        print("--status-replicas: more than 1 needs MINTPIPE_DATABASE_URL set to a postgresql:// DSN (on SQLite "
              "each replica would keep its own jobs, sweep alone and limit alone)", file=sys.stderr)
        return 2
    layout = Layout(args.data_dir, args.http_port, args.port_base, args.renderers, args.pinners,
                    args.status_replicas, args.minters)
    layout.data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = layout.data_dir / "logs" if demo else None
    from launcher.chain import ChainRefused, start_chain

    try:
        # In this (the main) thread: the node is told to stop when the thread that started it ends.
        chain = start_chain(layout.data_dir)
    except ChainRefused as exc:
        print(f"mintpipe: {exc}", file=sys.stderr)
        return 2
    except (OSError, TimeoutError, RuntimeError) as exc:
        print(f"mintpipe: cannot start the local chain: {exc}", file=sys.stderr)
        return 1
    specs = build_specs(layout)
    for spec in specs:
        if spec.module == "minter":  # the keys go to the minters only
            spec.env.update(chain.env)
    supervisor = Supervisor(specs, log_dir)
    try:
        return await _supervise(args, demo, layout, supervisor, chain, log_dir)
    finally:
        chain.stop()


async def _supervise(args: argparse.Namespace, demo: bool, layout: Any, supervisor: Any, chain: Any,
                     log_dir: Path | None) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await supervisor.start()
    except (TimeoutError, RuntimeError) as exc:
        print(f"mintpipe: {exc}", file=sys.stderr)
        await supervisor.stop()
        return 1
    bridges = "" if layout.status_replicas == 1 else (
        " and " + ", ".join(f"http://127.0.0.1:{layout.status_http_port(i)}" for i in range(1, layout.status_replicas)))
    print(f"mintpipe is up: {layout.http_url}{bridges} (renderers={args.renderers}, pinners={args.pinners}, "
          f"data={layout.data_dir.resolve()})", flush=True)
    print("metrics: " + ", ".join(f"{name} {url}" for name, url in layout.metrics_urls().items()), flush=True)
    print(f"dashboard: {layout.http_url}/admin", flush=True)
    code = 0
    if demo:
        from launcher.demo import run_example

        settings = json.loads(args.settings.read_text()) if args.settings else DEFAULT_SETTINGS
        work = asyncio.ensure_future(asyncio.to_thread(run_example, layout.http_url, layout.data_dir, settings,
                                                       chain.dev_keys[0] if chain.dev_keys else None))
        await asyncio.wait([work, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        try:
            code = work.result() if work.done() else 130
        except Exception as exc:  # the example failed; the system must still stop cleanly
            print(f"demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = 1
        if log_dir:
            print(f"service logs: {log_dir.resolve()}")
    else:
        failed = asyncio.ensure_future(supervisor.failed.wait())
        await asyncio.wait([asyncio.ensure_future(stop.wait()), failed], return_when=asyncio.FIRST_COMPLETED)
        code = 1 if failed.done() else 0
    print("stopping...", flush=True)
    await supervisor.stop()
    return code


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "health":  # the containers' healthcheck: parsed apart, the other verbs never imported
        from launcher import health_cli

        return health_cli.main(argv[1:])
    parser = argparse.ArgumentParser(prog="mintpipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _layout_args(sub.add_parser("up", help="run the whole system until Ctrl-C"))
    demo = sub.add_parser("demo", help="start the system, run one example job end to end, stop")
    _layout_args(demo)
    demo.add_argument("--settings", type=Path, help="settings JSON file (default: a built-in example)")
    sub.add_parser("render", help="render one job locally, without the broker", add_help=False)
    sub.add_parser("pinata-emulator", help="run the Pinata emulator (see --help)", add_help=False)
    from launcher import admin_cli, health_cli, jobs_cli

    health_cli.add_parser(sub)

    jobs_cli.add_parsers(sub)
    admin_cli.add_parser(sub)
    from launcher import job_cli

    job_cli.add_parsers(sub)

    if argv and argv[0] == "render":
        from renderer.local import main as render_main

        return render_main(argv[1:])
    if argv and argv[0] == "pinata-emulator":
        from pinata_emulator.__main__ import main as emulator_main

        emulator_main(argv[1:])
        return 0
    args = parser.parse_args(argv)
    if args.command == "admin":
        return admin_cli.run(args)
    if args.command in ("submit", "status", "job", "watch", "jobs"):
        return jobs_cli.run(args)
    if args.command == "mint":
        return job_cli.run(args)
    from mintpipe.config import log_level_name
    from mintpipe.runtime.log import configure_logging

    try:
        level = log_level_name(os.environ.get("MINTPIPE_LOG_LEVEL", "INFO"))
    except ValueError as exc:
        print(f"mintpipe: MINTPIPE_LOG_LEVEL {exc}", file=sys.stderr)
        return 2
    configure_logging("launcher", level)
    return asyncio.run(_run(args, demo=args.command == "demo"))


if __name__ == "__main__":
    sys.exit(main())
