#!/usr/bin/env bash
# The GPU check: what the CPU test suite cannot show, on one CUDA GPU, in
# under 10 minutes (about 6 expected on one H100; not yet run on a GPU).
#
#   bash tools/gpu_check.sh [--out DIR]     # on a machine with one GPU
#   bash tools/gpu_check.sh --dry-run       # the same steps on CPU, small
#
# Checks, each logged to DIR/<check>.log (default work_dirs/gpu_check):
#   cuda         torch sees a CUDA GPU
#   mmcv_ops     mmcv's compiled ops (nms, RoIAlign) run on CUDA tensors
#   cuda_tests   the test files that use CUDA pass, none skipped for it
#   steps        one training step of every config of configs/{skd,fgfi,cwd}
#                at its real input size, random weights (fp32)
#   steps_amp    the same under --amp (AmpOptimWrapper, fp16)
#   ddp          SKD (critic), FGFI and CWD configs stepped through the
#                wrapper of --launcher pytorch (torchrun, 1 process, NCCL)
#   benchmark    SKD and FGFI steps against their bound in fp32, with --amp
#                and with a bf16 teacher; peak GPU memory (DIR/benchmark.json)
# Prints a summary and exits non-zero if any check failed.
set -u -o pipefail

DRY=0
OUT=work_dirs/gpu_check
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT="$2"; shift ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

cd "$(dirname "$0")/.." || exit 2
mkdir -p "$OUT"
PY=${PYTHON:-python}
DEVICE=cuda
[ "$DRY" = 1 ] && DEVICE=cpu
export PYTHONWARNINGS=ignore

NAMES=()
STATUS=()
TIMES=()
record() {  # name status seconds
    NAMES+=("$1"); STATUS+=("$2"); TIMES+=("$3")
}

check() {  # name timeout_s command...
    local name=$1 limit=$2 start rc
    shift 2
    echo "== $name"
    start=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    grep -E '^(OK|FAIL) |configs stepped|^[a-z0-9-]+ +(fp32|amp|bf16)|passed|failed|error' \
        "$OUT/$name.log" | tail -40
    if [ $rc -eq 0 ]; then
        record "$name" PASS $(( $(date +%s) - start ))
    else
        [ $rc -eq 124 ] && echo "   (timed out after ${limit}s)"
        tail -20 "$OUT/$name.log"
        record "$name" FAIL $(( $(date +%s) - start ))
    fi
}

skip() {  # name reason
    echo "== $1: skipped ($2)"
    record "$1" SKIP 0
}

# --- the device and mmcv's compiled ops
if [ "$DRY" = 1 ]; then
    skip cuda 'dry run'
else
    check cuda 60 "$PY" -c "
import torch
assert torch.cuda.is_available(), 'torch.cuda.is_available() is False'
print('OK', torch.__version__, torch.version.cuda,
      torch.cuda.get_device_name(0))"
fi
check mmcv_ops 120 "$PY" -c "
import torch
from mmcv.ops import RoIAlign, nms
dev = '$DEVICE'
boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.],
                      [50., 50., 60., 60.]], device=dev)
scores = torch.tensor([0.9, 0.8, 0.7], device=dev)
_, keep = nms(boxes, scores, 0.5)
assert keep.tolist() == [0, 2], keep
feats = torch.arange(64., device=dev).reshape(1, 1, 8, 8)
rois = torch.tensor([[0., 0., 0., 4., 4.]], device=dev)
out = RoIAlign((2, 2), 1.0, 2)(feats, rois)
assert out.shape == (1, 1, 2, 2) and out.is_cuda == (dev == 'cuda')
half = nms(boxes.half(), scores.half(), 0.5)[1] if dev == 'cuda' else keep
assert half.tolist() == [0, 2]
print('OK mmcv ops on', dev)"

# --- the tests that need CUDA (they skip on CPU)
if [ "$DRY" = 1 ]; then
    skip cuda_tests 'dry run: these tests skip on CPU'
else
    mapfile -t CUDA_TESTS < <(grep -rlE 'cuda' tests --include='test_*.py')
    check cuda_tests 300 bash -c "set -o pipefail
        $PY -m pytest -q -rs -p no:cacheprovider ${CUDA_TESTS[*]} \
            | tee /dev/stderr | (! grep -E 'SKIPPED.*(CUDA|cuda)')"
fi

# --- one step of every published config
SMALL=$(ls configs/skd/*.py configs/fgfi/*.py configs/cwd/*.py |
        grep -v -E 'holistic|skd-all|hint')
if [ "$DRY" = 1 ]; then
    # the holistic critic needs >= 512x512 inputs, the hint config its own
    # size: one holistic config at full size
    check steps 900 bash -c "
        $PY tools/gpu_check_steps.py --device cpu --size-scale 0.125 \
            --configs $(echo $SMALL) &&
        $PY tools/gpu_check_steps.py --device cpu --configs \
            configs/skd/skd-holistic_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py"
    skip steps_amp 'dry run: mmengine AmpOptimWrapper needs an accelerator'
else
    check steps 300 "$PY" tools/gpu_check_steps.py --device cuda
    check steps_amp 300 "$PY" tools/gpu_check_steps.py --device cuda --amp
fi

# --- the distributed wrapper of --launcher pytorch
DDP_CONFIGS="configs/skd/skd-holistic_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py
configs/skd/skd-all_pspnet-r101-d8_deeplabv3plus-m-v2-d8_4xb2-40k_cityscapes-512x1024.py
configs/fgfi/fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py
configs/cwd/cwd-logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py"
if [ "$DRY" = 1 ]; then
    check ddp 600 "$PY" -m torch.distributed.run --nproc_per_node 1 \
        --master_port 29571 tools/gpu_check_steps.py --ddp --device cpu \
        --configs ${DDP_CONFIGS%%$'\n'*}
else
    check ddp 300 "$PY" -m torch.distributed.run --nproc_per_node 1 \
        --master_port 29571 tools/gpu_check_steps.py --ddp --device cuda \
        --configs $DDP_CONFIGS
fi

# --- the benchmark table
if [ "$DRY" = 1 ]; then
    check benchmark 900 "$PY" tools/gpu_check_benchmark.py --device cpu \
        --configs fgfi-d --size-scale 0.25 --steps 1 --warmup 0 \
        --out "$OUT/benchmark.json"
else
    check benchmark 300 "$PY" tools/gpu_check_benchmark.py --device cuda \
        --out "$OUT/benchmark.json"
fi

# --- summary
echo
echo "GPU check summary ($([ "$DRY" = 1 ] && echo 'dry run on CPU' || echo "$DEVICE")), logs in $OUT:"
FAILED=0
for i in "${!NAMES[@]}"; do
    printf '  %-11s %-4s %5ss\n' "${NAMES[$i]}" "${STATUS[$i]}" "${TIMES[$i]}"
    [ "${STATUS[$i]}" = FAIL ] && FAILED=1
done
exit $FAILED
