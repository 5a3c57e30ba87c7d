#!/usr/bin/env bash
# Quick start: install, start RabbitMQ if needed, run the whole system, render + pin one example job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/mintpipe demo "$@"
