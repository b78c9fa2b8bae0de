#!/usr/bin/env bash
# The OpenVINO worker's venv (.venv-ov): the same worker code on requirements/worker-openvino.txt (optimum-intel
# needs its own transformers). Made by `make test` (tests/stack/test_openvino_engine.py runs a worker from it) and by
# `make run` with MODEL_ENGINE=openvino-*. Idempotent: reinstalls only when the requirements change.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [[ ! -x .venv-ov/bin/python ]]; then
  echo "==> venv (.venv-ov) from $PY"
  "$PY" -m venv .venv-ov
fi
stamp=.venv-ov/.requirements.sha
sum=$(cat requirements/worker-openvino.txt requirements/common.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$sum" ]]; then
  echo "==> pip install -r requirements/worker-openvino.txt (.venv-ov)"
  .venv-ov/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv-ov/bin/python -m pip install -q -r requirements/worker-openvino.txt
  echo "$sum" > "$stamp"
fi
