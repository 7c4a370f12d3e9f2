#!/usr/bin/env bash
# Installs the test requirements into ./.venv and runs the whole test suite.
set -eu
cd "$(dirname "$0")"
source setup_env.sh requirements-dev.txt
set -eu
python -m pytest -q tests "$@"
