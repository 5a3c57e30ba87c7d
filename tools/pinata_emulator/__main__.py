"""python -m pinata_emulator [--port 3001] [--jwt TOKEN] [--rate-limit 180]

Runs the Pinata emulator on loopback. Point a Pinata client at it with its base URL
(mintpipe: PINNER_PINATA_API_URL and PINNER_PINATA_UPLOADS_URL = http://127.0.0.1:3001).
"""

from __future__ import annotations

import argparse
import os

import uvicorn

from pinata_emulator.app import create_app
from pinata_emulator.state import EmulatorState


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pinata-emulator", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--jwt", default=os.environ.get("PINATA_JWT", "dev-jwt"),
                        help="the bearer token it accepts (default: $PINATA_JWT or 'dev-jwt')")
    parser.add_argument("--rate-limit", type=int, default=180, help="requests per sliding minute (default 180)")
    parser.add_argument("--window", type=float, default=60.0, help="rate-limit window in seconds (default 60)")
    args = parser.parse_args(argv)
    state = EmulatorState(jwt=args.jwt, rate_limit=args.rate_limit, window_seconds=args.window)
    # A short graceful shutdown: a deliberately slowed answer (fault injection) must not hold up a stop.
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="warning", timeout_graceful_shutdown=2)


if __name__ == "__main__":
    main()
