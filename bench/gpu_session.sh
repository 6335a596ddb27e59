#!/usr/bin/env bash
# The GPU tier and the GPU benchmarks in one run, for a session lent a GPU machine.
# Here first (the GPU machine has no network): fetch the wheels its image lacks,
#   echo /.whl/ >> .git/info/exclude
#   ../shared/tools/gpu-wheels.sh .whl/core av kornia kornia_rs pydantic pydantic_core annotated_types typing_inspection \
#       dask distributed cloudpickle toolz partd locket fsspec msgpack psutil sortedcontainers tblib tornado zict \
#       click pyyaml jinja2 markupsafe urllib3 importlib_metadata zipp packaging
# and, for the conversion and faces phases (MediaPipe; a second transfer, as the 64 MiB carry
# cannot hold both groups), ../shared/tools/gpu-wheels.sh .whl/face mediapipe==0.10.21 numpy==1.26.4 "protobuf<5"
# then run a phase with carry [".whl"] (the install goes to /tmp/site, which stays on a warm
# machine), in this order of priority, each within one command's limit:
#   bash bench/gpu_session.sh tier      # the GPU tier and the CUDA-parametrised tests, ~4 min
#   bash bench/gpu_session.sh train     # training throughput, eager and compiled, ~4.5 min
#   bash bench/gpu_session.sh convert   # swap.json at 720p and 1080p against a plain transcode, ~4 min (face wheels)
#   bash bench/gpu_session.sh faces     # DetectFaces at 720p and 1080p, 1/4/16 workers, ~3 min (face wheels)
# (no phase: tier then train, as before). Everything it prints also lands in $OUT/gpu-PHASE.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
phase=${1:-default}
exec > >(tee "$OUT/gpu-$phase.log") 2>&1
export PYTHONUNBUFFERED=1
for group in .whl/*/; do  # whichever groups this transfer carried
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$group"*.whl || exit 1
done
python3 -m pip install -q --no-deps --no-build-isolation --no-index --target /tmp/site . || exit 1
export PYTHONPATH=/tmp/site:$PWD/tests
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
if [ "$phase" = default ] || [ "$phase" = tier ]; then
  echo "== GPU tier (the tests marked gpu, the render farm on a GPU worker among them)"
  timeout 150 python3 -m pytest -q -p no:cacheprovider -m gpu -x 2>&1 | tail -15
  echo "== CUDA-parametrised tests"
  timeout 90 python3 -m pytest -q -p no:cacheprovider tests/nodes/test_resample.py tests/runtime/test_executor.py \
      -k "cuda or device" -x 2>&1 | tail -15
fi
if [ "$phase" = default ] || [ "$phase" = train ]; then
  echo "== training throughput"
  timeout 120 python3 bench/train.py --device cuda --repeat 1
  timeout 150 python3 bench/train.py --device cuda --repeat 1 --compile --batch 512
fi
if [ "$phase" = convert ]; then
  echo "== conversion: graphs/swap.json on CUDA against a plain PyAV transcode on this machine, 720p and 1080p"
  for h in 720 1080; do timeout 110 python3 bench/convert.py --height "$h" --frames 150 2>&1 | tail -16; done
fi
if [ "$phase" = faces ]; then
  echo "== faces: DetectFaces + Align at 720p and 1080p on 1, 4 and 16 workers"
  for h in 720 1080; do timeout 85 python3 bench/faces.py --height "$h" --frames 300 --workers 1,4,16 --repeat 1 2>&1 | tail -12; done
fi
