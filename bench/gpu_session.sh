#!/usr/bin/env bash
# The GPU tier and the GPU benchmarks in one run, for a session lent a GPU machine.
# Here first (the GPU machine has no network): fetch the wheels its image lacks,
#   echo /.whl/ >> .git/info/exclude
#   ../shared/tools/gpu-wheels.sh .whl/core av kornia kornia_rs pydantic pydantic_core annotated_types typing_inspection \
#       dask distributed cloudpickle toolz partd locket fsspec msgpack psutil sortedcontainers tblib tornado zict \
#       click pyyaml jinja2 markupsafe urllib3 importlib_metadata zipp packaging
# then run this with carry [".whl"], e.g. timeout_s 540:
#   bash bench/gpu_session.sh
# Everything it prints also lands in $OUT/gpu.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/core/*.whl || exit 1
python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/site . || exit 1
export PYTHONPATH=/tmp/site:$PWD/tests
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
echo "== GPU tier (the tests marked gpu, the render farm on a GPU worker among them)"
timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu -x 2>&1 | tail -15
echo "== CUDA-parametrised tests"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/nodes/test_resample.py tests/runtime/test_executor.py \
    -k "cuda or device" -x 2>&1 | tail -15
echo "== training throughput"
timeout 120 python3 bench/train.py --device cuda --repeat 1
timeout 150 python3 bench/train.py --device cuda --repeat 1 --compile --batch 512
