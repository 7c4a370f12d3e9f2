#!/usr/bin/env bash
# Installs the test requirements into ./.venv, runs the linter (ruff, pyproject.toml) and the whole test suite.
set -eu
cd "$(dirname "$0")"
source setup_env.sh requirements-dev.txt
set -eu
ruff check .  # lint first: seconds, and a failure names file:line
python -m pytest -q tests "$@"
