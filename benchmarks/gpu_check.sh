#!/usr/bin/env bash
# GPU check (issue 19, item 8): every GPU figure in one run, under 10 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh            # from anywhere; runs in the repository root
#
# 1. the gpu-marked tests (python -m pytest -m gpu);
# 2. device-sampler throughput on SynthSAEBench-16k (benchmarks/sample.py; goal >= 1M samples/s);
# 3. one full-tier SAE (BatchTopK, L0 = 25, width 4096, batch 1024) for a fixed number of steps,
#    timed against SAELens's SyntheticSAERunner on the same GPU and data size (benchmarks/gpu_check.py sae);
# 4. certified exact codes for 100k samples of the 16k world (benchmarks/gpu_check.py codes).
# Each part has its own time limit (the sum stays under 10 minutes); a failing part does not stop
# the others; the summary at the end lists every part's status, and the exit status is non-zero if
# any failed. Without a CUDA device it stops at once with exit status 2.
# Environment: STEPS (SAE steps, default 3000), N_CODES (default 100000).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
STEPS="${STEPS:-3000}"
N_CODES="${N_CODES:-100000}"

if ! python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device is visible to torch ($(python -c 'import torch; print("torch", torch.__version__, "CUDA build", torch.version.cuda)' 2>&1)). This script needs one GPU; nothing was run." >&2
    exit 2
fi

echo "gpu_check $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname); commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
python -c "import torch, synthsae; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '| synthsae from', synthsae.__file__)"

declare -a SUMMARY=()
failed=0
part() {  # part NAME LIMIT_SECONDS COMMAND...
    local name="$1" limit="$2"; shift 2
    echo; echo "=== $name (limit ${limit} s) ==="
    local t0=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    local took=$((SECONDS - t0))
    if [ "$rc" -eq 0 ]; then SUMMARY+=("ok      ${took}s  $name"); else
        failed=1; SUMMARY+=("FAILED  ${took}s  $name (exit $rc$([ "$rc" -eq 124 ] && echo ', timed out'))"); fi
}

part "1. gpu-marked tests" 100 python -m pytest -m gpu -q -p no:cacheprovider
part "2. device-sampler throughput, SynthSAEBench-16k" 90 \
    python benchmarks/sample.py --devices cuda --gpu-batch 131072 --cpu-batch 4096 --repeats 5
part "3. BatchTopK (L0 = 25, width 4096) vs SAELens SyntheticSAERunner, $STEPS steps" 200 \
    python benchmarks/gpu_check.py sae --steps "$STEPS"
part "4. certified exact codes, $N_CODES samples of the 16k world" 180 \
    python benchmarks/gpu_check.py codes --n "$N_CODES"

echo; echo "=== summary ($SECONDS s in all) ==="
printf '%s\n' "${SUMMARY[@]}"
exit "$failed"
