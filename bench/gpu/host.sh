#!/usr/bin/env bash
# On an offline CUDA host: python -m bench.gpu with the packages of a bundle (python -m bench.gpu.bundle).
#   bash bench/gpu/host.sh BUNDLE_DIR RESULTS_DIR [python -m bench.gpu options]
# RESULTS_DIR gets gpu.json, gpu.log, host.txt (GPU, driver, imports) and logs.tar.gz (the stack's and the workers'
# logs). The unpacked packages stay in /tmp/site for the next run on the same host.
set -uo pipefail
cd "$(dirname "$0")/../.."
bundle=$(cd "$1" && pwd)
out=$2
shift 2
mkdir -p "$out" /tmp/site
if [[ ! -f /tmp/site/.complete ]]; then
  tar -C /tmp/site -xJf "$bundle/site.tar.xz" && touch /tmp/site/.complete
fi
export PYTHONPATH="/tmp/site:$PWD" PATH="$bundle/redis:$PATH" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false GRADIO_ANALYTICS_ENABLED=False
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  nproc; free -g | head -2
  redis-server --version
  python3 -c 'import sys, torch, transformers, av, gradio, celery, pydantic, num2words
print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available(),
      "transformers", transformers.__version__, "av", av.__version__, "gradio", gradio.__version__,
      "pydantic", pydantic.__version__)'
} > "$out/host.txt" 2>&1
python3 -m bench.gpu --out "$out/gpu.json" "$@" 2> "$out/gpu.log"
rc=$?
tar -czf "$out/logs.tar.gz" --ignore-failed-read bench/work/logs bench/work/stacks/gpu/logs 2>/dev/null
exit $rc
