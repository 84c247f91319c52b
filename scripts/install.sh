#!/usr/bin/env bash
# Install rdmeval and everything the demo and the tests need into ./.venv, from scratch.
#   torch 2.14.1 / torchvision 0.29.1 (pinned), rdmeval with extras geneval,audit,report,test,
#   and mmcv 2.1.0 with compiled ops (scripts/install_mmcv.sh; built once, then cached).
# Re-running it is cheap: pip skips what is installed and the mmcv wheel comes from the cache.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q torch==2.14.1 torchvision==0.29.1
# setuptools<81 keeps pkg_resources (mmcv's setup.py and mmengine import it) and builds rdmeval.
"$VPY" -m pip install -q "setuptools>=77,<81" wheel
"$VPY" -m pip install -q --no-build-isolation -e ".[geneval,audit,report,test]"
PYTHON="$VPY" bash scripts/install_mmcv.sh
"$VPY" -m rdmeval env | sed -n '1,3p'   # sed reads all of it: no broken pipe under pipefail
