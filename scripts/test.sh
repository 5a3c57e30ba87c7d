#!/usr/bin/env bash
# The test command: install what the tests need, check generated code and lint, run every test
# (unit, integration against the real RabbitMQ, e2e through the launcher).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
scripts/gen_protos.sh --check
node web/build.mjs --check
node contracts/build.mjs --check
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
