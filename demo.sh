#!/usr/bin/env bash
# The end-to-end demo on built-in data. Installs into ./.venv first.
set -eu
cd "$(dirname "$0")"
source setup_env.sh requirements.txt
set -eu
python test_changes.py
