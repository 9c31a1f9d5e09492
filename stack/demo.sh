#!/usr/bin/env bash
# `make demo`: start the stack and run the platform end to end on local defaults (see ecom/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ecom up
exec .venv/bin/ecom demo "$@"
