#!/usr/bin/env bash
# Creates ./.venv and installs requirements into it (again only when a requirements file changed).
# Usage: source setup_env.sh [requirements-file]   (default requirements.txt)
set -eu
cd "$(dirname "${BASH_SOURCE[0]}")"
reqs="${1:-requirements.txt}"
[ -x .venv/bin/python ] || python3 -m venv .venv
stamp=".venv/.installed-$(cat "$reqs" requirements*.txt | sha1sum | cut -c1-12)"  # any included file counts
if [ ! -f "$stamp" ]; then
  echo "== installing $reqs into .venv (a few minutes the first time)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$reqs"
  touch "$stamp"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
export PATH="$PWD/.venv/bin:$PATH"
set +eu
