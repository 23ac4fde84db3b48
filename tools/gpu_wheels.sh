#!/usr/bin/env bash
# Prepares here, with no GPU, every wheel the GPU check needs on a lent GPU
# machine beyond that machine's image, in the ignored folder .gpu_wheels/
# (the device tool's `carry`): mmcv 2.1.0 with CUDA ops for Hopper (sm_90),
# compiled here against that machine's torch and Python, and mmengine, mmdet,
# mmsegmentation and the pure-Python (or cp312 manylinux) packages they need
# that the image lacks. See docs/distributed_training.md, "The GPU check on a
# lent machine".
#
#   bash tools/gpu_wheels.sh
#
# The lent machine (as the device tool describes it): x86-64, Python 3.12,
# torch 2.11.0+cu130, CUDA 13.0, an H100 or H200 (sm_90), no network, at most
# 64 MiB carried with the working tree. .gpu_wheels/TARGET records what the
# wheels were built for; tools/gpu_install.sh checks it there before it
# installs anything.
#
# Environment:
#   PYTHON312   a CPython 3.12 (default: python3.12 on PATH, else the newest
#               ~/.pyenv/versions/3.12.*)
#   CUDA_HOME   a CUDA 13.0 toolkit (default: the one nvcc on PATH is in)
#   MAX_JOBS    parallel compile jobs (default 2; nice -n 15 always)
#   GPU_BUILD   scratch folder (default .gpu_build, ignored): the build venv
#               with torch 2.11.0 and its CUDA wheels (about 4 GB), the mmcv
#               source and its object files (a second run recompiles only the
#               changed files)
#
# The compile takes long on few cores: 136 translation units, 58 of them CUDA
# (here, on 2 cores: about an hour from scratch, e.g. 62 units with one job
# beside other work in 41 minutes, the other 74 with two jobs in 18). Each
# step says what it does and the script stops at the first step that fails,
# naming it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEELS="$ROOT/.gpu_wheels"
BUILD=${GPU_BUILD:-$ROOT/.gpu_build}
PATCH="$ROOT/tools/mmcv-2.1.0-torch2.11-cuda13.patch"
TORCH_VERSION=2.11.0
TORCH_LOCAL=2.11.0+cu130   # PyPI's manylinux cp312 wheel of 2.11.0 is this build
CUDA_VERSION=13.0
ARCH=9.0
MMCV_VERSION=2.1.0
MMCV_SDIST_SHA256=d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f
LIMIT_MIB=64
# What the GPU check imports beyond the image (by the image's package list):
# the OpenMMLab stack and what it needs that is not there.
# The image's opencv-python-headless stands in for opencv-python.
PACKAGES=(mmengine mmdet mmsegmentation addict yapf platformdirs termcolor
          terminaltables pycocotools shapely prettytable wcwidth ftfy)
STEP=start

fail() { echo "[gpu wheels] FAILED at step: $STEP" >&2; }
trap fail ERR
step() { STEP="$1"; echo "[gpu wheels] $1"; }
die() { echo "[gpu wheels] $*" >&2; fail; exit 1; }

step "find Python 3.12"
is312() { "$1" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; }
PY312=${PYTHON312:-}
if [ -z "$PY312" ]; then
  # a pyenv shim on PATH runs only where pyenv selects 3.12: try it, then
  # pyenv's own 3.12 interpreters
  for candidate in $(command -v python3.12) \
      $(ls -d "$HOME"/.pyenv/versions/3.12.*/bin/python 2>/dev/null | sort -Vr); do
    if is312 "$candidate"; then PY312=$candidate; break; fi
  done
fi
[ -n "$PY312" ] && is312 "$PY312" ||
  die "expected a CPython 3.12 (the GPU machine's Python; wheels are built for cp312), found: '${PY312:-none}'; set PYTHON312"

step "find nvcc of CUDA $CUDA_VERSION"
if [ -z "${CUDA_HOME:-}" ]; then
  if [ -x /usr/local/cuda-$CUDA_VERSION/bin/nvcc ]; then
    CUDA_HOME=/usr/local/cuda-$CUDA_VERSION
  else
    # nvcc on PATH may be a wrapper script (/usr/local/bin/nvcc): its dryrun
    # names the toolkit it runs
    NVCC=$(command -v nvcc) || die "expected nvcc of CUDA $CUDA_VERSION on PATH or CUDA_HOME set; found neither"
    CUDA_HOME=$("$NVCC" --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)
    CUDA_HOME=$(cd "${CUDA_HOME:-/nonexistent}" 2>/dev/null && pwd || echo "(not found)")
  fi
fi
[ -x "$CUDA_HOME/bin/nvcc" ] || die "expected $CUDA_HOME/bin/nvcc; set CUDA_HOME to a CUDA $CUDA_VERSION toolkit"
FOUND=$("$CUDA_HOME/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
[ "$FOUND" = "$CUDA_VERSION" ] ||
  die "expected nvcc of CUDA $CUDA_VERSION (torch $TORCH_LOCAL's), found $FOUND in $CUDA_HOME"
export CUDA_HOME

step "build venv: torch==$TORCH_VERSION for cp312 with its CUDA wheels (about 4 GB, once)"
mkdir -p "$BUILD"
VENV="$BUILD/venv312"
[ -x "$VENV/bin/python" ] || "$PY312" -m venv "$VENV"
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --disable-pip-version-check "setuptools<82" wheel ninja
# torch with its requirements: the cu13 wheels hold the headers mmcv's CUDA
# code includes (cublas_v2.h, cusparse.h, cusolverDn.h), which a bare nvcc
# toolkit may lack, and the libraries `import torch` loads
"$VPY" -m pip install -q --disable-pip-version-check "torch==$TORCH_VERSION"
FOUND=$("$VPY" -c 'import torch; print(torch.__version__, torch.version.cuda)')
[ "$FOUND" = "$TORCH_LOCAL $CUDA_VERSION" ] ||
  die "expected torch $TORCH_LOCAL (CUDA $CUDA_VERSION) in $VENV, found: $FOUND"
NVINC=$("$VPY" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13", "include"))')
[ -f "$NVINC/cublas_v2.h" ] && [ -f "$NVINC/cusparse.h" ] ||
  die "expected the CUDA library headers in $NVINC (torch's nvidia-* cu13 wheels)"

step "mmcv $MMCV_VERSION source (PyPI sdist, checked against its sha256)"
SDIST="$BUILD/dl/mmcv-$MMCV_VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
  # metadata is prepared with the venv's torch, hence no build isolation
  "$VPY" -m pip download -q --disable-pip-version-check --no-deps \
    --no-build-isolation --no-binary=:all: -d "$BUILD/dl" "mmcv==$MMCV_VERSION"
fi
echo "$MMCV_SDIST_SHA256  $SDIST" | sha256sum -c --quiet - ||
  die "$SDIST is not PyPI's mmcv $MMCV_VERSION sdist (sha256 differs); delete it and rerun"

# The patch of mmcv's sources for torch 2.11 / CUDA 13, applied when present:
# none was needed by the translation units compiled so far (see
# docs/distributed_training.md); a unit that fails adds its minimal fix there.
step "unpack mmcv$([ -f "$PATCH" ] && echo " and apply $(basename "$PATCH")")"
SRC="$BUILD/src/mmcv-$MMCV_VERSION"
mkdir -p "$BUILD/src"
APPLIED="$SRC/.mmkd-applied.patch"   # the patch the tree holds now
patched_files() { [ -f "$1" ] && sed -n 's|^+++ [^/]*/\([^\t ]*\).*|\1|p' "$1"; true; }
UNPACK=0
[ -f "$SRC/setup.py" ] || UNPACK=1
if [ -f "$PATCH" ] || [ -f "$APPLIED" ]; then
  cmp -s "$PATCH" "$APPLIED" 2>/dev/null || UNPACK=1
fi
if [ "$UNPACK" = 1 ]; then
  # the tarball restores the original files over a previous tree, with their
  # old mtimes: the files the old or the new patch changes are touched, so
  # the kept build/ folder recompiles them and nothing else
  CHANGED=$( { patched_files "$APPLIED"; patched_files "$PATCH"; } | sort -u)
  tar -xzf "$SDIST" -C "$BUILD/src"
  rm -f "$APPLIED"
  if [ -f "$PATCH" ]; then
    patch -d "$SRC" -p1 --forward --quiet <"$PATCH"
    cp "$PATCH" "$APPLIED"
  fi
  for f in $CHANGED; do touch "$SRC/$f"; done
fi

step "compile mmcv $MMCV_VERSION with CUDA ops for sm_$ARCH (MAX_JOBS=${MAX_JOBS:-2}, long)"
rm -rf "$BUILD/mmcv-dist"
START=$(date +%s)
(cd "$SRC" && PATH="$VENV/bin:$PATH" CPATH="$NVINC${CPATH:+:$CPATH}" \
  TORCH_CUDA_ARCH_LIST=$ARCH MMCV_WITH_OPS=1 FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-2} \
  CFLAGS="-DNDEBUG -O3 -g0 -Wall -fno-strict-overflow" \
  nice -n 15 "$VPY" setup.py -q bdist_wheel -d "$BUILD/mmcv-dist" >"$BUILD/mmcv-build.log" 2>&1) || {
  grep -E 'error|Error' "$BUILD/mmcv-build.log" | head -20 >&2
  die "mmcv's build failed; full log: $BUILD/mmcv-build.log"; }
echo "  compiled in $(( $(date +%s) - START )) s"

step "strip the debug symbols off mmcv's extension"
rm -rf "$BUILD/repack" && mkdir -p "$BUILD/repack" "$WHEELS"
WHL=$(ls "$BUILD"/mmcv-dist/mmcv-$MMCV_VERSION-cp312-cp312-*.whl)
"$VPY" -m wheel unpack -d "$BUILD/repack" "$WHL" >/dev/null
strip --strip-debug "$BUILD"/repack/mmcv-$MMCV_VERSION/mmcv/_ext*.so
rm -f "$WHEELS"/mmcv-*.whl
"$VPY" -m wheel pack -d "$WHEELS" "$BUILD/repack/mmcv-$MMCV_VERSION" >/dev/null

step "download ${PACKAGES[*]} (versions from requirements/constraints.txt)"
PINS=()
for name in "${PACKAGES[@]}"; do
  pin=$(grep -i "^$name==" "$ROOT/requirements/constraints.txt") ||
    die "expected a pin of $name in requirements/constraints.txt"
  PINS+=("$pin")
done
for name in "${PACKAGES[@]}"; do rm -f "$WHEELS/$name"-*.whl "$WHEELS/${name//-/_}"-*.whl; done
"$VPY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$WHEELS" "${PINS[@]}"

step "write .gpu_wheels/TARGET and SHA256SUMS"
cat >"$WHEELS/TARGET" <<EOF
# what these wheels were prepared for (tools/gpu_wheels.sh); tools/gpu_install.sh checks it
PYTHON=3.12
ABI=cp312
MACHINE=x86_64
TORCH=$TORCH_LOCAL
CUDA=$CUDA_VERSION
ARCH=$ARCH
EOF
(cd "$WHEELS" && sha256sum -- *.whl >SHA256SUMS)
N=$(ls "$WHEELS"/*.whl | wc -l)
[ "$N" = $(( ${#PACKAGES[@]} + 1 )) ] ||
  die "expected $(( ${#PACKAGES[@]} + 1 )) wheels in $WHEELS (one per package), found $N"

step "measure what a device call carries (working tree + .gpu_wheels, at most $LIMIT_MIB MiB)"
# (a tracked file deleted in the checkout does not travel: stat skips it)
TREE=$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
  { xargs -0 -r stat -c %s -- 2>/dev/null || true; } | awk '{s += $1} END {print s + 0}')
CARRIED=$(du -sb "$WHEELS" | cut -f1)
awk -v t="$TREE" -v w="$CARRIED" -v lim="$LIMIT_MIB" 'BEGIN {
  printf "  working tree %.1f MiB + .gpu_wheels %.1f MiB = %.1f MiB of %d\n",
    t / 2^20, w / 2^20, (t + w) / 2^20, lim }'
[ $(( TREE + CARRIED )) -le $(( LIMIT_MIB * 1024 * 1024 )) ] ||
  die "what a call carries exceeds $LIMIT_MIB MiB: carry less (see the sizes above)"
ls -l "$WHEELS"
echo "[gpu wheels] ready: carry .gpu_wheels (docs/distributed_training.md)"
