"""`mintpipe health HOST:PORT [--service NAME] [--timeout S]`: one gRPC health check, for container healthchecks
and operators.

Exit codes: 0 the server answers SERVING; 1 it answers, but not SERVING (NOT_SERVING while it starts, drains or
has lost the broker; an unknown --service); 2 usage; 3 nothing answers at that address in time. Anything but 0
prints one line to stderr saying why, so `docker inspect`'s health log reads as a reason, not a traceback.

It imports only grpc and the health stubs (not the rest of the CLI): Docker runs it every few seconds in every
container, so its start-up is the check's cost.
"""

from __future__ import annotations

import argparse
import sys

NOT_SERVING = 1
USAGE = 2
UNREACHABLE = 3


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("health", help="ask a service's gRPC health check (exit 0 when SERVING)")
    _arguments(p)
    return p


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", metavar="HOST:PORT", help="the service's gRPC address, e.g. 127.0.0.1:50051")
    p.add_argument("--service", default="", help="a service name (e.g. mintpipe.v1.Gateway); default: the server")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer (default 3)")


def check(address: str, service: str = "", timeout: float = 3.0) -> tuple[int, str]:
    """(exit code, one-line reason) of one Health.Check call."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout,
                                wait_for_ready=True)
        except grpc.RpcError as exc:
            code = exc.code()
            named = f"service {service!r}" if service else "the server"
            if code == grpc.StatusCode.NOT_FOUND:
                return NOT_SERVING, f"{address}: {named} is not known to its health check"
            if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE):
                return UNREACHABLE, f"{address}: no gRPC answer within {timeout:g}s ({code.name.lower()})"
            return NOT_SERVING, f"{address}: health check failed: {code.name} {exc.details()}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if answer.status == health_pb2.HealthCheckResponse.SERVING:
        return 0, f"{address}: SERVING"
    return NOT_SERVING, f"{address}: {status}"


def run(args: argparse.Namespace) -> int:
    host, sep, port = args.address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        print(f"mintpipe health: address: expected HOST:PORT, got {args.address!r}", file=sys.stderr)
        return USAGE
    if not 0 < args.timeout <= 600:
        print(f"mintpipe health: --timeout: expected 0-600 seconds, got {args.timeout:g}", file=sys.stderr)
        return USAGE
    code, reason = check(args.address, args.service, args.timeout)
    print(reason, file=sys.stdout if code == 0 else sys.stderr)
    return code


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mintpipe health", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _arguments(parser)
    return run(parser.parse_args(argv))
