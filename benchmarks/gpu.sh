#!/usr/bin/env bash
# The GPU benchmark: curvature of the adversarial loss of a CIFAR-10 ResNet-18 (float32).
# (bench_resnet_curvature.py's docstring says what is measured.)
#
#   bash benchmarks/gpu.sh            # from anywhere; PYTHON=... picks the interpreter
#
# Data: $CIFAR10_DIR (a folder with CIFAR-10's python or binary release) if set, else
# synthetic 32x32x3 images. N (default 128) is the batch; if it does not fit, rerun with
# N=64 (or less). MODEL (resnet18) picks the network, OUT_DIR (benchmarks/results) the
# folder, DTYPE (float32) the precision: in float32 ResNet-18's λ_max is "not computed"
# (advlip.spectral's float32 error model stops at 4.2M parameters; DTYPE=float64 gives it),
# EXTRA passes more options to the benchmark (say EXTRA="--steps 10").
# Writes $OUT_DIR/gpu-<model>-n<N>-<dtype>-<date>.json and prints the device first;
# benchmarks/results_md.py --gpu puts its figures in benchmarks/RESULTS.md.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
N="${N:-128}"
MODEL="${MODEL:-resnet18}"
DTYPE="${DTYPE:-float32}"
PYTHON="${PYTHON:-$(command -v python || command -v python3)}"
# advlip from this checkout, installed or not
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT_DIR="${OUT_DIR:-benchmarks/results}"
mkdir -p "$OUT_DIR"
OUT="$OUT_DIR/gpu-${MODEL}-n${N}-${DTYPE}-$(date -u +%Y%m%dT%H%M%SZ).json"

echo "== device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c 'import jax; print("jax", jax.__version__, jax.devices())'

DATA=()
if [[ -n "${CIFAR10_DIR:-}" ]]; then
    DATA=(--data "$CIFAR10_DIR")
    echo "== data: CIFAR-10 from $CIFAR10_DIR"
else
    echo "== data: synthetic 32x32x3 images (set CIFAR10_DIR for CIFAR-10)"
fi

echo "== bench_resnet_curvature: $MODEL, n=$N, $DTYPE -> $OUT"
# shellcheck disable=SC2086  # EXTRA is a list of options, split on purpose
"$PYTHON" benchmarks/bench_resnet_curvature.py --model "$MODEL" --n "$N" --dtype "$DTYPE" \
    ${DATA[@]+"${DATA[@]}"} --json "$OUT" ${EXTRA:-}
echo "== wrote $OUT"
echo "== to put its figures in benchmarks/RESULTS.md (the device is named in it):"
echo "   $PYTHON benchmarks/results_md.py benchmarks/results/cpu-quick.json --gpu $OUT > benchmarks/RESULTS.md"
