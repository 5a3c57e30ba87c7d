"""`mintpipe render SETTINGS.json --out DIR`: render one job locally, no broker (artists, benchmarks)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from mintpipe.core.scenes import DEFAULT_SCENE, SettingsError, validate_settings
from renderer.render import RENDERER_VERSION, render_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mintpipe render", description=__doc__)
    parser.add_argument("settings", type=Path, help="JSON file with the scene's settings")
    parser.add_argument("--out", type=Path, required=True, help="folder for image.gif, animation.mp4, preview.png")
    parser.add_argument("--scene", default=DEFAULT_SCENE)
    args = parser.parse_args(argv)
    try:
        settings = validate_settings(args.scene, json.loads(args.settings.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        print(f"settings: cannot read {args.settings}: {exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    started = time.perf_counter()
    assets = render_job(args.scene, settings, args.out)
    elapsed = time.perf_counter() - started
    print(f"rendered {args.scene} (renderer {RENDERER_VERSION}) in {elapsed:.2f}s")
    for asset in assets:
        print(f"  {asset.kind:<9} {asset.path}  {asset.size:>9} B  sha256 {asset.sha256[:16]}…")
    return 0
