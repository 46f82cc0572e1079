#!/bin/bash
# The prepared GPU check of the CUDA filtered_lrelu kernels: one call on a lent GPU machine, which has
# PyTorch, nvcc, numpy, scipy and ninja but no TensorFlow (under 6 minutes: the check itself is cut at 300 s).
#
# Here, once (NVIDIA's checkout travels as the ignored folder .nvlabs, about 5 MB):
#     git clone https://github.com/NVlabs/stylegan3 .nvlabs        # or copy a checkout there
# Then, on the device machine, from the repository root (device tool: carry [".nvlabs"], timeout_s 420):
#     bash custom_ops/cuda_test/device_check.sh
#
# 1. builds the TensorFlow-free CUDA library (sm_80 / sm_90 SASS) with that machine's nvcc;
# 2. records its registers, spills and shared memory (cuobjdump --dump-resource-usage) and the
#    tiling model with the SASS figures (kernel_model.py --sass);
# 3. runs cuda_kernel_check.py --nvlabs: 200 random cases and all 15 StyleGAN3-T and 15 -R layers at
#    256x256, forward and gradient against the unfused PyTorch reference and NVIDIA's fused plugin
#    (compiled there by PyTorch), then the timing table (ours, unfused PyTorch, NVIDIA, ms per call).
# Logs go to $OUT (the device tool brings them back) or ./device-check-out; the exit status is the
# check's (1: a correctness failure, 124: it ran past its time).
set -u -o pipefail
OUT=${OUT:-device-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
NVLABS=${NVLABS:-.nvlabs}
LIB_DIR=${LIB_DIR:-/tmp/afgan-flrelu}
PY=${PYTHON:-python3}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  nvcc --version | tail -1
  "$PY" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
} 2>&1 | tee "$OUT/machine.txt"

"$PY" custom_ops/build.py --cuda-only-standalone --outdir "$LIB_DIR" 2>&1 | tee "$OUT/build.log" || exit 2
LIB="$LIB_DIR/libafgan_flrelu_cuda.so"
(cuobjdump --dump-resource-usage "$LIB" 2>&1 | grep -E 'arch|Function|REG'
 "$PY" custom_ops/cuda_test/kernel_model.py --sass "$LIB") > "$OUT/kernels.txt" 2>&1 || true

args=(--lib "$LIB")
if [ -d "$NVLABS/torch_utils" ]; then
  args+=(--nvlabs "$NVLABS")
else
  echo "no NVIDIA checkout at $NVLABS: checking against the PyTorch reference only" | tee -a "$OUT/check.log"
fi
timeout "${CHECK_TIMEOUT:-300}" "$PY" custom_ops/cuda_test/cuda_kernel_check.py "${args[@]}" 2>&1 | tee -a "$OUT/check.log"
status=${PIPESTATUS[0]}
echo "cuda_kernel_check exit status: $status" | tee -a "$OUT/check.log"
exit "$status"
