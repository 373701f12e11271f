#!/usr/bin/env bash
# Regenerates the federated-learning reference figures (see reference.py) from
# Flower and dp-accounting, installed from PyPI into a virtualenv of their own.
set -euo pipefail
cd "$(dirname "$0")"
venv="${EMR_FL_VENV:-$HOME/.cache/emr-ledger/fl-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check flwr==1.42.0 dp-accounting==0.6.0
fi
"$venv/bin/python" reference.py
echo "wrote flower_reference.json, dp_accounting_reference.json, centralized_reference.json"
