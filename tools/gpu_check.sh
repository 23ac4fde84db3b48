#!/usr/bin/env bash
# The GPU check: what the CPU test suite cannot show, on one CUDA GPU, in one
# command within a time budget (default 480 s; not yet run on a GPU).
#
#   bash tools/gpu_check.sh [--wheels DIR] [--out DIR] [--budget S]
#                           [--only CHECK,CHECK]   (install runs anyway)
#   bash tools/gpu_check.sh --dry-run       # the same steps on CPU, small
#                                           # (budget 3600 s unless given)
#
# On a lent GPU machine (docs/distributed_training.md, "The GPU check on a
# lent machine"): bash tools/gpu_check.sh --wheels .gpu_wheels --out "$OUT"
#
# Checks, in this order (install, cuda and mmcv_ops stop the check when they
# fail: nothing after them could pass):
#   install      the wheels of tools/gpu_wheels.sh (--wheels; default
#                .gpu_wheels where it exists) checked against this machine
#                and installed with no network (tools/gpu_install.sh)
#   cuda         torch sees a CUDA GPU
#   mmcv_ops     mmcv's compiled ops (nms, RoIAlign) run on CUDA tensors
#   cuda_tests   the test files that use CUDA pass, none skipped for it
#   steps        one training step of every config of configs/{skd,fgfi,cwd}
#                at its real input size, random weights (fp32)
#   steps_amp    the same under --amp (AmpOptimWrapper, fp16)
#   ddp          SKD (critic), FGFI and CWD configs stepped through the
#                wrapper of --launcher pytorch (torchrun, 1 process, NCCL)
#   benchmark    SKD and FGFI steps against their bound in fp32, with --amp
#                and with a bf16 teacher; peak GPU memory
# Each check has a time limit, cut to what is left of the budget; a check
# with under 15 s left is not run (and counts as failed). Writes
# DIR/gpu_check.log (every check's output) and DIR/gpu_check.json
# (tools/gpu_check_report.py: each check's status and time, each step's time
# and peak memory, the benchmark rows); default DIR work_dirs/gpu_check.
# Prints a summary and exits non-zero if any check failed or was not run.
set -u -o pipefail

DRY=0
OUT=work_dirs/gpu_check
WHEELS=
BUDGET=
ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT="$2"; shift ;;
        --wheels) WHEELS="$2"; shift ;;
        --budget) BUDGET="$2"; shift ;;
        --only) ONLY=",$2,"; shift ;;
        -h|--help) sed -n '2,/^set /{/^set /!p}' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done
# the CPU dry run is slower than the GPU run it stands in for
[ -z "$BUDGET" ] && { [ "$DRY" = 1 ] && BUDGET=3600 || BUDGET=480; }
[[ "$BUDGET" =~ ^[0-9]+$ ]] || { echo "--budget expects whole seconds, got '$BUDGET'" >&2; exit 2; }

START=$(date +%s)
cd "$(dirname "$0")/.." || exit 2
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/gpu_check.log"
LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT
: >"$LOG"
: >"$LOGS/checks.tsv"
PY=${PYTHON:-python3}
DEVICE=cuda
[ "$DRY" = 1 ] && DEVICE=cpu
export PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1
if [ -z "$WHEELS" ] && [ "$DRY" = 0 ] && [ -d .gpu_wheels ]; then
    WHEELS=.gpu_wheels
fi

NAMES=()
STATUS=()
TIMES=()
record() {  # name status seconds limit note
    NAMES+=("$1"); STATUS+=("$2"); TIMES+=("$3")
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$LOGS/checks.tsv"
}

check() {  # name timeout_s command...
    local name=$1 limit=$2 start rc left
    shift 2
    wanted "$name" || return 0
    left=$(( START + BUDGET - $(date +%s) ))
    if [ "$left" -lt 15 ]; then
        echo "== $name: not run (${left}s of the ${BUDGET}s budget left)"
        echo "== $name: not run (${left}s of the ${BUDGET}s budget left)" >>"$LOG"
        record "$name" FAIL 0 0 "not run: budget spent"
        return 1
    fi
    [ "$limit" -gt $(( left - 5 )) ] && limit=$(( left - 5 ))
    echo "== $name (limit ${limit}s)"
    start=$(date +%s)
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    { echo "== $name (limit ${limit}s, exit $rc, $(( $(date +%s) - start ))s)"
      cat "$LOGS/$name.log"; } >>"$LOG"
    grep -E '^(OK|FAIL) |configs stepped|^[a-z0-9-]+ +(fp32|amp|bf16)|passed|failed|error|^\[gpu install\] (ready|this machine)|^  (prepared|Python|torch)' \
        "$LOGS/$name.log" | tail -40
    if [ $rc -eq 0 ]; then
        record "$name" PASS $(( $(date +%s) - start )) "$limit" ""
        return 0
    fi
    [ $rc -eq 124 ] && echo "   (timed out after ${limit}s)"
    tail -20 "$LOGS/$name.log"
    record "$name" FAIL $(( $(date +%s) - start )) "$limit" "exit $rc"
    return 1
}

# --only: the named checks (install always runs where --wheels is given)
wanted() { [ -z "$ONLY" ] || { [ "$1" = install ] && [ -n "$WHEELS" ]; } || [[ "$ONLY" == *",$1,"* ]]; }

skip() {  # name reason
    wanted "$1" || return 0
    echo "== $1: skipped ($2)"
    echo "== $1: skipped ($2)" >>"$LOG"
    record "$1" SKIP 0 0 "$2"
}

finish() {  # the summary and the JSON; exits
    local failed=0 i
    echo
    echo "GPU check summary ($([ "$DRY" = 1 ] && echo 'dry run on CPU' || echo "$DEVICE")), $(( $(date +%s) - START ))s of ${BUDGET}s:"
    for i in "${!NAMES[@]}"; do
        printf '  %-11s %-4s %5ss\n' "${NAMES[$i]}" "${STATUS[$i]}" "${TIMES[$i]}"
        [ "${STATUS[$i]}" = FAIL ] && failed=1
    done
    [ -n "${1:-}" ] && { echo "  stopped: $1"; failed=1; }
    "$PY" tools/gpu_check_report.py --checks "$LOGS/checks.tsv" --logs "$LOGS" \
        --out "$OUT/gpu_check.json" --budget-s "$BUDGET" \
        --total-s $(( $(date +%s) - START )) || failed=1
    echo "log: $LOG"
    exit $failed
}

# --- the wheels prepared for this machine (tools/gpu_wheels.sh)
if [ -n "$WHEELS" ]; then
    SITE=${MMKD_GPU_SITE:-/tmp/mmkd-site}
    check install 300 env PYTHON="$PY" bash tools/gpu_install.sh \
        --wheels "$WHEELS" --target "$SITE" ||
        finish "install failed: the wheels do not fit this machine or do not load (see above)"
    export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    skip install "$([ "$DRY" = 1 ] && echo 'dry run: this machine'"'"'s stack' || echo 'no --wheels: the installed stack')"
fi

# --- the device and mmcv's compiled ops
if [ "$DRY" = 1 ]; then
    skip cuda 'dry run'
else
    check cuda 60 "$PY" -c "
import torch
assert torch.cuda.is_available(), 'torch.cuda.is_available() is False'
print('OK', torch.__version__, torch.version.cuda,
      torch.cuda.get_device_name(0))" || finish "no CUDA GPU seen by torch"
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
print('OK mmcv ops on', dev)" || finish "mmcv's compiled ops do not run"

# --- the tests that need CUDA (they skip on CPU)
if [ "$DRY" = 1 ]; then
    skip cuda_tests 'dry run: these tests skip on CPU'
else
    mapfile -t CUDA_TESTS < <(grep -rlE 'cuda' tests --include='test_*.py')
    check cuda_tests 120 bash -c "set -o pipefail
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
    check steps 150 "$PY" tools/gpu_check_steps.py --device cuda
    check steps_amp 150 "$PY" tools/gpu_check_steps.py --device cuda --amp
fi

# --- the distributed wrapper of --launcher pytorch
DDP_CONFIGS="configs/skd/skd-holistic_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x1024.py
configs/skd/skd-all_pspnet-r101-d8_deeplabv3plus-m-v2-d8_4xb2-40k_cityscapes-512x1024.py
configs/fgfi/fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py
configs/cwd/cwd-logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py"
if [ "$DRY" = 1 ]; then
    check ddp 1800 "$PY" -m torch.distributed.run --nproc_per_node 1 \
        --master_port 29571 tools/gpu_check_steps.py --ddp --device cpu \
        --configs ${DDP_CONFIGS%%$'\n'*}
else
    check ddp 90 "$PY" -m torch.distributed.run --nproc_per_node 1 \
        --master_port 29571 tools/gpu_check_steps.py --ddp --device cuda \
        --configs $DDP_CONFIGS
fi

# --- the benchmark table
if [ "$DRY" = 1 ]; then
    check benchmark 1800 "$PY" tools/gpu_check_benchmark.py --device cpu \
        --configs fgfi-d --size-scale 0.25 --steps 1 --warmup 0 \
        --out "$LOGS/benchmark.json"
else
    check benchmark 180 "$PY" tools/gpu_check_benchmark.py --device cuda \
        --steps 5 --warmup 2 --out "$LOGS/benchmark.json"
fi

finish
