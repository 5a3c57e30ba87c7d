"""The floor under the submit path: what each of its parts costs alone on this machine, in CPU per request.

A submission crosses an HTTP server (uvicorn + httptools on uvloop), two gRPC unary calls (bridge -> gateway,
gateway -> status) and one confirmed RabbitMQ publish, plus a group-committed SQLite write. This measures the
bare parts with nothing of mintpipe in them:
  http   wrk -> uvicorn: a FastAPI route answering 202 with a small JSON body, and a raw ASGI app doing the same
  grpc   a grpc.aio unary call of ~200 bytes each way to a grpc.aio server in another process (client + server CPU)
  amqp   aio-pika publishes with publisher confirms to a quorum queue (the client's CPU; RabbitMQ's beside it)
each at 1 request in flight and at 100 (capacity), so the sum says how far 1,000 submissions a second on 2 cores
can be from Python here (wrk and RabbitMQ take their share of the same cores).

Run: .venv/bin/python bench/submit_floor.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

from _system import cpu_seconds, free_port

HTTP_APP = textwrap.dedent('''
    import sys, uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "fastapi":
        app = FastAPI()
        @app.post("/v1/jobs", status_code=202)
        async def submit(body: dict) -> dict:
            return {"job_id": "0" * 32, "stage": "queued", "status_url": "/v1/jobs/" + "0" * 32}
    else:
        async def app(scope, receive, send):
            while (await receive()).get("more_body"):
                pass
            await JSONResponse({"job_id": "0" * 32, "stage": "queued", "status_url": "/v1/jobs/" + "0" * 32},
                               202)(scope, receive, send)
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False, loop="uvloop",
                http="httptools", lifespan="off")
''')

GRPC_SERVER = textwrap.dedent('''
    import sys, grpc, uvloop
    async def echo(request, context):
        return request
    async def main():
        server = grpc.aio.server()
        call = grpc.unary_unary_rpc_method_handler(echo)
        handler = grpc.method_handlers_generic_handler("floor.Echo", {"Call": call})
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port("127.0.0.1:" + sys.argv[1])
        await server.start()
        print("ready", flush=True)
        await server.wait_for_termination()
    uvloop.run(main())
''')


def _wait_port(port: int) -> None:
    import socket
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def http_floor(seconds: int) -> None:
    script = Path(__file__).resolve().parent / "wrk_submit.lua"
    for kind in ("fastapi", "raw-asgi"):
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", HTTP_APP, kind, str(port)])
        try:
            _wait_port(port)
            for connections in (1, 100):
                before = cpu_seconds(server.pid)
                out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script),
                                      f"http://127.0.0.1:{port}", "--", "floor", "/v1/jobs", "0"],
                                     capture_output=True, text=True, check=True)
                r = json.loads(out.stdout.strip().splitlines()[-1])
                cpu = (cpu_seconds(server.pid) - before) * 1000 / max(1, r["requests"])
                print(f"http  {kind:<9} {connections:>3} in flight  {r['requests'] / r['seconds']:7.0f}/s  "
                      f"server CPU {cpu:.3f} ms/request  p99 {r['p99_us'] / 1000:.1f} ms  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            server.terminate()
            server.wait()


async def _grpc_client(port: int, concurrency: int, seconds: float) -> int:
    import grpc
    done = 0
    payload = b"x" * 200
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/floor.Echo/Call")
        await call(payload)
        end = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < end:
                await call(payload)
                done += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


def grpc_floor(seconds: int) -> None:
    import uvloop
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", GRPC_SERVER, str(port)], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        for concurrency in (1, 100):
            before_server, before_client, start = cpu_seconds(server.pid), time.process_time(), time.monotonic()
            calls = uvloop.run(_grpc_client(port, concurrency, seconds))
            wall = time.monotonic() - start
            client = (time.process_time() - before_client) * 1000 / calls
            serv = (cpu_seconds(server.pid) - before_server) * 1000 / calls
            print(f"grpc  unary     {concurrency:>3} in flight  {calls / wall:7.0f}/s  client CPU {client:.3f} + "
                  f"server {serv:.3f} ms/call  load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        server.terminate()
        server.wait()


def _beam_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "beam.smp":
                    return int(entry.name)
            except OSError:
                continue
    return None


async def _publish(amqp_url: str, concurrency: int, seconds: float) -> int:
    import aio_pika
    queue_name = f"floor-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        done = 0
        end = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < end:
                await channel.default_exchange.publish(
                    aio_pika.Message(b"x" * 200, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), queue_name)
                done += 1
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await channel.queue_delete(queue_name)
    return done


def amqp_floor(seconds: int, amqp_url: str) -> None:
    import uvloop
    beam = _beam_pid()
    for concurrency in (1, 100):
        before_beam = cpu_seconds(beam) if beam else 0.0
        before, start = time.process_time(), time.monotonic()
        published = uvloop.run(_publish(amqp_url, concurrency, seconds))
        wall = time.monotonic() - start
        client = (time.process_time() - before) * 1000 / published
        broker = f"{(cpu_seconds(beam) - before_beam) * 1000 / published:.3f}" if beam else "?"
        print(f"amqp  confirmed {concurrency:>3} in flight  {published / wall:7.0f}/s  client CPU {client:.3f} ms/msg  "
              f"(RabbitMQ {broker} ms/msg, shared)  load {os.getloadavg()[0]:.1f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--amqp-url", default=os.environ.get("MINTPIPE_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    args = parser.parse_args()
    print(f"the submit path's parts alone, {args.seconds} s each, on {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.1f} at start)")
    http_floor(args.seconds)
    grpc_floor(args.seconds)
    amqp_floor(args.seconds, args.amqp_url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
