#!/usr/bin/env bash
# The GPU figures still owed by issues 9 and 10, in one device call (< 9.5 min).
#
# Prepare here (once per checkout): the GPU machine has Python 3.12 and jax, but not
# neural-tangents, hydra-core, omegaconf, antlr4-python3-runtime or frozendict. Download
# their wheels into .whl/ (git-ignored) with the device README's `pip download` command
# (--python-version 3.12; neural-tangents==0.6.5, hydra-core==1.3.2, omegaconf==2.3.0,
# frozendict); antlr4-python3-runtime 4.9.3 has no wheel on the index:
# `.venv/bin/python -m pip wheel --no-deps antlr4-python3-runtime==4.9.3 -w .whl`.
#
# Run: device `run` with carry [".whl"], command `bash tools/gpu_check.sh`, timeout_s 600
# (its steps end by DEADLINE, 560 s after its start: a step's limit is cut to what is
# left, and one with under 20 s left is skipped; with a machine's start, about 12 of the
# session's 15 device minutes). The device tool now lends H200s only (`status`: kinds);
# issue 10's 8-hour target is in H100-hours. Every figure is a ratio to neural-tangents
# in the same run, and bench_targets judges an H200's Myrtle-5 hours by the most an H100
# can take (the same chip with 1/1.43 the memory bandwidth: HOURS_BOUNDS).
# $OUT holds at most 8 files at the end (log.txt, 3 fastconv CSVs, the empirical bench's
# CSV, the profile CSV, targets.md, and make bench's CSV where step 3 runs): the device
# returns at most 8, so a new output file must replace one (the script warns).
# Dry run on a CPU (small sizes; the tensor-core rows say "needs a GPU"):
#   DRY=1 OUT=/tmp/gpu_check PYTHON=.venv/bin/python bash tools/gpu_check.sh
# (every step passes so under jax 0.10.2, and under the GPU machine's jax 0.11.2 with
# PYTHON=.venv-xla-gpu-0.11.2/bin/python JAX_PLATFORMS=cpu: `make xla-gpu-model XLA_GPU_JAX=0.11.2`).
#
# What it measures, in order of priority (each step has its own time limit, so a slow
# step cannot take the later ones with it; everything lands in $OUT). The fourteenth
# session (results/bench/session14/) measured on an H100: Myrtle-5 6.5x plain
# neural-tangents, CNN-GAP 7.3x, WRN-10-1 6.4x, no Pallas kind faster than XLA; the
# structured NTK 2.56-2.64x Jacobian contraction, its weight-gradient bound 2.86x, the
# cotangent floor 3.98x; its products as TF32 x3 no faster. What is left is knowing
# where the time goes, and timing what the fifteenth session built without a GPU:
#   0. issue 10, first: Myrtle-5 and CNN-GAP with fast_kernel=pallas_diagonal_first (the
#      sixteenth session: the first layer's product and ReLU in one Pallas step that
#      writes the padded covariances the `diagonal` step reads, and `diagonal` steps
#      that write padded outputs for the next; compiled for an H100 here, 8.0 / 14.1 us
#      per pair for Myrtle-5 / CNN-GAP in the model against 15.5 / 22.5 for the XLA
#      default, projected 10.6-12.0x plain neural-tangents; compiled with this machine's
#      jax 0.11.2, 8.4 / 14.5 us, 10.3-11.7x: results/bench/session17/), and
#      fast_kernel=pallas_diagonal_first_masked (the eighteenth session: the same steps
#      storing no padding, the next step masking its loads; 12-13x projected for both),
#      each at 4 and 8 warps, beside neural-tangents and the XLA default; then CNN-GAP
#      with fast_kernel=pallas_diagonal_first_masked_tail (its last conv + ReLU and the
#      global mean fused into the step before; 14-16x projected; results/bench/session18/),
#      at 4, 8 and 16 warps. The warps are the steps' (the first layer's step keeps 4).
#      Compiled for an H100 (results/bench/session19/), 4 warps leave the steps 8-12
#      resident warps per SM (168-255 registers a thread), 8 warps 16, and the tail at 16
#      warps 32, for 3-15% more instructions: the roofline model cannot rank them.
#      If one reaches 10x, set ntkexp.fastconv.select.GPU_AUTO_PALLAS_KIND to the fastest
#      kind that does (auto, on GPUs), and ntkexp.fastconv.pallas.DIAGONAL_NUM_WARPS (8,
#      from the fourteenth session's diagonal kinds) to its fastest warps.
#      Then: Myrtle-5 and CNN-GAP with the recursion variant separate_padded
#      (recursion.SEPARATE_NTK_SHIFT_SUM and PADDED_FIRST_LAYER; off until timed), side
#      by side with neural-tangents and the default. XLA's program for an H100, compiled
#      here without one and modelled kernel by kernel (ntkexp/xla_gpu_model.py,
#      results/bench/session15/), puts it 9.6% (Myrtle-5) and 16% (CNN-GAP) below the
#      default. Also the Pallas `diagonal` step at 8 warps taking the padded first layer
#      (model 11.1 us per pair for Myrtle-5 against 15.5 for the XLA default).
#   1. issue 9: the WRN-10-4 empirical NTK (64x64 inputs, 16 images, logits traced):
#      Jacobian contraction, ntkexp's structured NTK, the same with the network's
#      convolutions as three TF32 tensor-core products each (ntkexp/tf32x3_conv.py;
#      the sixteenth session: the cotangent floor is mostly float32 cuDNN
#      convolutions), also with its products so, the cotangent floor both ways, and
#      the factors alone (taps and backward passes, no contractions).
#   2. issue 9: device time per XLA operation of the structured NTK and of the
#      weight-gradient bound (python -m ntkexp.profile_ops, one CSV).
#   3. if a Pallas kind meets issue 10 on both networks (bench_targets --choice after
#      steps first_relu and gap_tail; CHOICE=KIND:WARPS sets it by hand), `make bench`'s
#      infinite-width rows for Myrtle-5 and CNN-GAP at 32 images with fast_kernel=auto
#      taking it (python -m ntkexp.bench --gpu-auto-pallas-kind, --no-nt-engine), run
#      right after the empirical step: the setting timed as `ntkexp run` would use it.
#   4. every CSV against the issues' targets (python -m ntkexp.bench_targets $OUT, into
#      $OUT/targets.md): which rows meet 10x / 1e-5 / 8 h and 3x / 1e-6, and the
#      Pallas kind and warps to set for `auto`. The fastconv bench saves each row as it
#      is measured, so a step cut by its limit keeps what it timed.
# (The per-operation profile of Myrtle-5's fast kernel, `python -m
# ntkexp.fastconv.stage_bench --kernels myrtle5 --side 32 --n 32`, no longer fits.)
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
DEADLINE=${DEADLINE:-560}
if [ -z "${DRY:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
  SIDE=32; N=32; EMP_SIDE=64; EMP_N=16; WRN_K=4; BENCH_SIZE=gpu
else
  SIDE=8; N=2; EMP_SIDE=8; EMP_N=2; WRN_K=1; BENCH_SIZE=cpu
fi
LOG="$OUT/log.txt"

step() {  # step NAME SECONDS COMMAND...: runs it with a time limit, logs the outcome
  local name=$1 limit=$2; shift 2
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo "=== $name: skipped, ${left}s left before the ${DEADLINE}s deadline" | tee -a "$LOG"
    return
  fi
  if [ "$limit" -gt "$left" ]; then limit=$left; fi
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
} 2>&1 | tee "$LOG"

step first_relu 130 env JAX_DEFAULT_MATMUL_PRECISION=highest $PYTHON \
  -m ntkexp.fastconv.bench --arch myrtle5,cnn_gap --side $SIDE --n $N --repeats 3 \
  --variants default --pallas --pallas-kinds diagonal_first_masked,diagonal_first \
  --num-warps 4,8 \
  --out "$OUT/fastconv_first_relu.csv"
step gap_tail 80 env JAX_DEFAULT_MATMUL_PRECISION=highest $PYTHON \
  -m ntkexp.fastconv.bench --arch cnn_gap --side $SIDE --n $N --repeats 3 \
  --variants default --pallas --pallas-kinds diagonal_first_masked_tail --num-warps 4,8,16 \
  --out "$OUT/fastconv_gap_tail.csv"
# The Pallas kind and warps `auto` should take, if one meets issue 10 on both networks.
CHOICE=${CHOICE:-$($PYTHON -m ntkexp.bench_targets "$OUT" --choice 2>>"$LOG" | tail -n 1)}
echo "=== choice for fast_kernel=auto: ${CHOICE:-none (XLA)}" | tee -a "$LOG"
step empirical 140 env JAX_DEFAULT_MATMUL_PRECISION=highest $PYTHON -m ntkexp.bench \
  --only empirical --n image=$EMP_SIDE empirical_n=$EMP_N wrn_k=$WRN_K --repeats 5 \
  --empirical-impl JACOBIAN_CONTRACTION NTKEXP_STRUCTURED NTKEXP_STRUCTURED_CONVS_TF32X3 \
  NTKEXP_STRUCTURED_ALL_TF32X3 COTANGENT_FLOOR COTANGENT_FLOOR_CONVS_TF32X3 \
  NTKEXP_STRUCTURED_FACTORS --out "$OUT/empirical"
if [ -n "$CHOICE" ]; then
  step make_bench_auto 120 env JAX_DEFAULT_MATMUL_PRECISION=highest $PYTHON \
    -m ntkexp.bench --size $BENCH_SIZE --only infinite --arch myrtle5 cnn_gap \
    --n myrtle5=$N cnn_gap=$N image=$SIDE --repeats 3 --no-nt-engine \
    --gpu-auto-pallas-kind "$CHOICE" --out "$OUT/make_bench"
fi
step fastconv_variants 70 env JAX_DEFAULT_MATMUL_PRECISION=highest $PYTHON \
  -m ntkexp.fastconv.bench --arch myrtle5,cnn_gap --side $SIDE --n $N --repeats 3 \
  --variants default,separate_padded \
  --pallas --pallas-kinds diagonal --num-warps 8 --pallas-variants padded_first \
  --out "$OUT/fastconv_variants.csv"
step profile 80 env JAX_DEFAULT_MATMUL_PRECISION=highest $PYTHON \
  -m ntkexp.profile_ops --method NTKEXP_STRUCTURED WEIGHT_GRADIENTS --side $EMP_SIDE \
  --n $EMP_N --wrn-k $WRN_K --top 30 --out "$OUT/profile.csv"
# Last: every CSV above against the issues' targets (ntkexp/bench_targets.py), with the
# Pallas kind and warps `auto` should take if one meets issue 10 on both networks.
$PYTHON -m ntkexp.bench_targets "$OUT" 2>&1 | tee "$OUT/targets.md"
# The device returns at most 8 files from $OUT (its README's Limits).
FILES=$(find "$OUT" -type f | wc -l)
if [ "$FILES" -gt 8 ]; then
  echo "WARNING: $FILES files under $OUT; the device returns at most 8:" | tee -a "$LOG"
  find "$OUT" -type f | tee -a "$LOG"
fi
