#!/usr/bin/env bash
# Prepares, here, what benchmarks/device_check.sh needs on the device machine. That machine has PyTorch,
# tiktoken, numpy, matplotlib, click, pyyaml, psutil, pandas and NVIDIA's NVML bindings (the device tool's
# KINDS.md lists its packages) but not mlflow or optuna, and it reaches no registry and no ../shared. So:
#   .whl/          wheels, for its Python, of what the runner imports there and it lacks, at the versions
#                  installed in this environment (the ones the tests ran against)
#   .device-data/  The Verdict, tiktoken's gpt2 files, and nanoGPT's model.py (the reference script)
#                  where NANOGPT_MODEL names it
# Both are listed in .git/info/exclude and travel as the device tool's `carry`:
#   run(command="bash benchmarks/device_check.sh", carry=[".whl", ".device-data"], timeout_s=540)
#
#   bash benchmarks/device_bundle.sh                      # DEVICE_PYTHON=3.12 by default
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${GPT_SHARED_DIR:-../shared}
python_version=${DEVICE_PYTHON:-3.12}

# mlflow-skinny is mlflow's client without the server and its UI (26 MB of JavaScript): all a run needs.
packages=(
    mlflow-skinny mlflow-tracing optuna sqlalchemy alembic mako colorlog cachetools
    opentelemetry-api opentelemetry-sdk opentelemetry-proto opentelemetry-semantic-conventions
    pydantic pydantic-core annotated-types typing-inspection sqlparse python-dotenv importlib-metadata
    gitpython gitdb smmap databricks-sdk google-auth pyasn1 pyasn1-modules fastapi starlette
    cryptography cffi pycparser
)
pins=()
for name in "${packages[@]}"; do
    version=$(python -m pip show "$name" 2>/dev/null | sed -n 's/^Version: //p')
    [[ -n $version ]] || { echo "device_bundle: $name is not installed here; install the project first" >&2; exit 2; }
    pins+=("$name==$version")
done

for folder in .whl .device-data; do
    grep -qx "/$folder/" .git/info/exclude 2>/dev/null || echo "/$folder/" >>.git/info/exclude
done
rm -rf .whl .device-data
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux1; do
    platforms+=(--platform "${tag}_x86_64")
done
python -m pip download --quiet --no-deps --only-binary=:all: --python-version "$python_version" \
    --implementation cp "${platforms[@]}" -d .whl "${pins[@]}"

mkdir -p .device-data/tiktoken-cache
cp "$shared/data/the-verdict.txt" .device-data/
cp "$shared"/tiktoken-cache/* .device-data/tiktoken-cache/
if [[ -n ${NANOGPT_MODEL:-} ]]; then
    cp "$NANOGPT_MODEL" .device-data/nanogpt_model.py
fi
echo "device_bundle: $(ls .whl | wc -l) wheels ($(du -sh .whl | cut -f1)) for Python $python_version in .whl;" \
    "$(ls .device-data | tr '\n' ' ')in .device-data"
