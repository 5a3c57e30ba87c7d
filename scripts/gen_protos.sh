#!/usr/bin/env bash
# Regenerates the gRPC/protobuf stubs from protos/ (the one source of truth) into libs/mintpipe/v1.
# Usage: scripts/gen_protos.sh [--check]   (--check fails when the committed stubs differ)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
out=libs
if [ "${1:-}" = "--check" ]; then
  out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/mintpipe/v1"
"$PY" -m grpc_tools.protoc -I protos \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  protos/mintpipe/v1/*.proto
touch "$out/mintpipe/v1/__init__.py"
if [ "${1:-}" = "--check" ]; then
  if ! diff -r -x __pycache__ "$out/mintpipe/v1" libs/mintpipe/v1; then
    echo "gen_protos: committed stubs differ from protos/; run scripts/gen_protos.sh and commit" >&2
    exit 1
  fi
  echo "gen_protos: stubs match protos/"
fi
