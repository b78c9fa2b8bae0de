#!/usr/bin/env bash
# Prepares a fresh Debian machine for tests and the local run: system packages (redis-server,
# chromium for browser tests), the venv with pinned packages, the tiny test model. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
[[ ${SKIP_BROWSER:-0} == 1 ]] || [[ -x /usr/bin/chromium ]] || need_apt+=(chromium)
[[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]] || need_apt+=(fonts-dejavu-core)
if ((${#need_apt[@]})); then
  echo "==> apt-get install ${need_apt[*]}"
  sudo_cmd=(); [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PY" -c 'import sys; assert sys.version_info[:2] >= (3, 11), sys.version' || {
  echo "Нужен Python 3.11 или новее" >&2; exit 1; }
if [[ ! -x .venv/bin/python ]]; then
  echo "==> venv (.venv) from $PY"
  "$PY" -m venv .venv
fi
stamp=.venv/.requirements.sha
sum=$(cat requirements/*.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$sum" ]]; then
  echo "==> pip install -r requirements/dev.txt"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -r requirements/dev.txt
  echo "$sum" > "$stamp"
fi

[[ -f data/samples/clip.mp4 ]] || .venv/bin/python scripts/samples.py data/samples

echo "==> test model (data/test-model)"
HF_HUB_OFFLINE=1 .venv/bin/python scripts/build_test_model.py data/test-model

echo "==> test translators (data/test-translation-ru-en, data/test-translation-en-ru)"
HF_HUB_OFFLINE=1 .venv/bin/python scripts/build_test_translation.py --all data
