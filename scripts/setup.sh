#!/usr/bin/env bash
# Create .venv (once) and install compress with its CPU dependencies. Idempotent and quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
# constraints-cpu.txt pins the local CPU torch wheel (an unpinned torch pulls GBs of CUDA packages).
# The openvino extra (OpenVINO + NNCF) is the CPU backend; its tests run in CI because it is installed here.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints-cpu.txt -e ".[test,openvino]"
