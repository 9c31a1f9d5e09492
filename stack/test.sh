#!/usr/bin/env bash
# `make test`: the whole suite against the real stack. The pytest session starts the stack if it is not
# running and stops it again at the end (see tests/conftest.py); a developer's running stack is reused.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
exec .venv/bin/python -m pytest tests -p no:cacheprovider -o junit_family=xunit2 \
  --junitxml=test-artifacts/junit.xml --durations=25 "$@"
