#!/usr/bin/env bash
# The device check, on the device machine, from what benchmarks/device_bundle.sh prepared here (carried as
# .whl and .device-data). Extra arguments go to benchmarks.device_check. The log lands in $OUT when the
# device tool sets it, so a run cut off at its limit still brings back what it printed.
set -euo pipefail
cd "$(dirname "$0")/.."
site=${DEVICE_SITE:-/tmp/site}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export TIKTOKEN_CACHE_DIR="$PWD/.device-data/tiktoken-cache" GPT_CACHE_DIR=/tmp/gpt-cache
reference=()
[[ -f .device-data/nanogpt_model.py ]] && reference=(--reference .device-data/nanogpt_model.py)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
log=${OUT:-/tmp}/device_check.log
python3 -m benchmarks.device_check --data .device-data/the-verdict.txt "${reference[@]}" "$@" 2>&1 | tee "$log"
