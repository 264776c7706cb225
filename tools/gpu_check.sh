#!/usr/bin/env bash
# The GPU figures still owed by issues 9 and 10, in one device call (< 9.5 min).
#
# Prepare here (once per checkout): the GPU machine has Python 3.12 and jax, but not
# neural-tangents, hydra-core, omegaconf, antlr4-python3-runtime or frozendict. Download
# their wheels into .whl/ (git-ignored) with the device README's `pip download` command
# (--python-version 3.12; neural-tangents==0.6.5, hydra-core==1.3.2, omegaconf==2.3.0,
# antlr4-python3-runtime==4.9.3, frozendict).
#
# Run: device `run` with carry [".whl"], command `bash tools/gpu_check.sh`, timeout_s 580.
# Dry run on a CPU (small sizes; the Pallas kinds give "interpret mode only" rows):
#   DRY=1 OUT=/tmp/gpu_check PYTHON=.venv/bin/python bash tools/gpu_check.sh
#
# What it measures, in order of priority (each step has its own time limit, so a slow
# step cannot take the later ones with it; everything lands in $OUT):
#   1. issue 10: Myrtle-5, one 32x32 block of 32x32x3 images, float32 with exact float32
#      products on both sides, against plain neural-tangents: the XLA recursion with steps
#      of 2^20 / 2^22 / 2^26 entries, and the diagonal Pallas kinds at 4 and 8 warps.
#      If a diagonal kind wins, make it the GPU default (ntkexp/fastconv/select.py).
#   2. issue 9: the WRN-10-4 empirical NTK (64x64 inputs, 16 images, logits traced),
#      Jacobian contraction against neural-tangents' and ntkexp's structured derivatives
#      (per-layer choice, all weight gradients, all position pairs). >= 3x closes issue 9.
#   3. issue 10: CNN-GAP (depth 3) with the fused-input Pallas kinds.
#   4. one conv + ReLU + pool step of each kind (stage_bench 32).
#   5. Myrtle-5 in float64 (8 images).
# Results: commit them under results/bench/<session>/ with the device named.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
if [ -z "${DRY:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  SIDE=32; N=32; EMP_SIDE=64; EMP_N=16; WRN_K=4; F64_N=8; REPEATS=3
else
  SIDE=8; N=2; EMP_SIDE=8; EMP_N=2; WRN_K=1; F64_N=2; REPEATS=1
fi
LOG="$OUT/log.txt"

step() {  # step NAME SECONDS COMMAND...: runs it with a time limit, logs the outcome
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s): $*" | tee -a "$LOG"
  local start=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG" | tail -40
  echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start))s" | tee -a "$LOG"
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
  $PYTHON - <<'EOF'
import jax, ntkexp, neural_tangents, sys
from ntkexp import kernels
device = jax.devices()[0]
print('jax', jax.__version__, 'neural_tangents', neural_tangents.__version__,
      'python', sys.version.split()[0], 'device', device)
print('memory_stats', getattr(device, 'memory_stats', lambda: None)())
print('device_free_bytes', kernels.device_free_bytes())
print('tensorflow imported:', 'tensorflow' in sys.modules)
EOF
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

KINDS=diagonal,diagonal_relu_in,diagonal_patches,diagonal_patches_tf32x3
step myrtle5 200 env JAX_DEFAULT_MATMUL_PRECISION=highest $PYTHON -m ntkexp.fastconv.bench \
  --arch myrtle5 --side $SIDE --n $N --repeats $REPEATS \
  --variants default,steps_2p20,steps_2p22,large_steps \
  --pallas --pallas-kinds $KINDS --num-warps 4,8 --out "$OUT/fastconv_myrtle5.csv"
step empirical 150 env JAX_DEFAULT_MATMUL_PRECISION=highest $PYTHON -m ntkexp.bench \
  --only empirical --n image=$EMP_SIDE empirical_n=$EMP_N wrn_k=$WRN_K --repeats 2 \
  --empirical-impl JACOBIAN_CONTRACTION STRUCTURED_DERIVATIVES NTKEXP_STRUCTURED \
  NTKEXP_STRUCTURED_GRADIENTS NTKEXP_STRUCTURED_PAIRS --out "$OUT/empirical"
step cnn_gap 100 env JAX_DEFAULT_MATMUL_PRECISION=highest $PYTHON -m ntkexp.fastconv.bench \
  --arch cnn_gap --side $SIDE --n $N --repeats $REPEATS --variants default \
  --pallas --pallas-kinds diagonal_relu_in,diagonal_patches,diagonal_patches_tf32x3 \
  --num-warps 4 --out "$OUT/fastconv_cnn_gap.csv"
step stage 60 $PYTHON -m ntkexp.fastconv.stage_bench $SIDE
step float64 40 env JAX_ENABLE_X64=1 $PYTHON -m ntkexp.fastconv.bench --arch myrtle5 \
  --side $SIDE --n $F64_N --repeats 2 --dtype float64 --out "$OUT/fastconv_myrtle5_f64.csv"
