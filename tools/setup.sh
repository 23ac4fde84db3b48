#!/usr/bin/env bash
# One idempotent set-up step for mmkd: installs the pinned, tested stack into
# the current Python environment and mmkd itself in editable mode.
#
#   bash tools/setup.sh
#
# Every pip install is constrained by requirements/constraints.txt, the lock
# file with the exact version of every package installed here, dependencies
# included (rewritten by tools/lock_requirements.sh).
#
# Environment:
#   PYTHON            interpreter to install into (default: python3)
#   MMKD_WHEELHOUSE   folder searched for a prebuilt mmcv 2.1.0 wheel; a wheel
#                     built from source is cached there when it is writable
#                     (otherwise in MMKD_CACHE), so a second run takes seconds
#   MMKD_CACHE        writable cache for built wheels (default ~/.cache/mmkd/wheels)
#   MMKD_UNLOCKED=1   install without the lock file (tools/lock_requirements.sh
#                     does this to find the newest set; not for users)
#
# A torch build that is already installed (e.g. a CUDA build) is kept; without
# one, torch==2.13.0 is installed. mmcv's ops are compiled with CUDA when a
# CUDA toolkit (nvcc) and a GPU are present. Each step says what it does and
# the script stops at the first step that fails, naming it.
set -euo pipefail

PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MMKD_CACHE:-$HOME/.cache/mmkd/wheels}
STEP="start"

fail() { echo "[mmkd setup] FAILED at step: $STEP" >&2; }
trap fail ERR
step() { STEP="$1"; echo "[mmkd setup] $1"; }
LOCK="$ROOT/requirements/constraints.txt"
if [ "${MMKD_UNLOCKED:-0}" = 1 ]; then LOCKED=(); else LOCKED=(-c "$LOCK"); fi
pip_install() { "$PYTHON" -m pip install --disable-pip-version-check -q ${LOCKED[@]+"${LOCKED[@]}"} "$@"; }
# Run checks outside the checkout, so that "import mmkd" finds the installed one.
py_ok() { (cd / && "$PYTHON" - "$@" >/dev/null 2>&1); }

step "check Python"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 8), sys.version' || {
  echo "mmkd needs Python >= 3.8 (tested: 3.11); found: $("$PYTHON" --version 2>&1)" >&2; false; }

step "torch (keep an installed build, else torch==$TORCH_VERSION)"
if py_ok <<<'import torch'; then
  echo "  keeping torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
else
  # The stack holds one conflict no resolver can satisfy: torch asks for
  # setuptools>=77.0.3 (it builds C++ extensions with it), openmim's openxlab
  # pins setuptools~=60.2.0, and the lock holds the latter. So torch goes in
  # without its requirements, and then every requirement of it but that one,
  # through the lock.
  pip_install --no-deps "torch==$TORCH_VERSION"
  TORCH_REQS=$(mktemp)
  "$PYTHON" - >"$TORCH_REQS" <<'EOF'
import importlib.metadata as md
import re
for req in md.requires('torch') or []:
    name = re.split(r'[\s<>=!~;\[(]', req, maxsplit=1)[0]
    if 'extra ==' not in req and name.lower() != 'setuptools':
        print(req)
EOF
  pip_install -r "$TORCH_REQS"
  rm -f "$TORCH_REQS"
fi

step "build tools for mmcv (setuptools<70, wheel, ninja)"
pip_install "setuptools<70" wheel ninja

step "mmengine"
pip_install mmengine==0.10.7

# mmcv is usable when its compiled ops load (and run on the GPU where one is
# present and torch can use it).
MMCV_CHECK='
import mmcv, torch
assert mmcv.__version__ == "'$MMCV_VERSION'", mmcv.__version__
from mmcv.ops import bbox_overlaps
b = torch.tensor([[0., 0., 10., 10.]])
assert abs(float(bbox_overlaps(b, b)) - 1.0) < 1e-6
if torch.cuda.is_available():
    assert abs(float(bbox_overlaps(b.cuda(), b.cuda())) - 1.0) < 1e-6
'
mmcv_ok() { py_ok <<<"$MMCV_CHECK"; }

try_wheels_in() {
  local dir="$1" whl
  [ -d "$dir" ] || return 1
  for whl in "$dir"/mmcv-"$MMCV_VERSION"-*.whl; do
    [ -f "$whl" ] || continue
    if [ -f "$dir/SHA256SUMS" ] && grep -q "$(basename "$whl")" "$dir/SHA256SUMS"; then
      (cd "$dir" && grep "$(basename "$whl")" SHA256SUMS | sha256sum -c --quiet -) || {
        echo "  checksum mismatch for $whl: skipping it" >&2; continue; }
    fi
    echo "  trying $whl"
    pip_install --no-deps --force-reinstall "$whl" || continue
    if mmcv_ok; then return 0; fi
    echo "  $whl does not load its ops with this torch: skipping it" >&2
  done
  return 1
}

step "mmcv $MMCV_VERSION with compiled ops"
if mmcv_ok; then
  echo "  mmcv $MMCV_VERSION with ops already installed"
elif { [ -n "${MMKD_WHEELHOUSE:-}" ] && try_wheels_in "$MMKD_WHEELHOUSE"; } || try_wheels_in "$CACHE"; then
  echo "  installed from a wheelhouse"
else
  # Build from the PyPI source distribution, caching the wheel.
  OUT="$CACHE"
  if [ -n "${MMKD_WHEELHOUSE:-}" ] && mkdir -p "$MMKD_WHEELHOUSE" 2>/dev/null && [ -w "$MMKD_WHEELHOUSE" ]; then
    OUT="$MMKD_WHEELHOUSE"
  fi
  mkdir -p "$OUT"
  if command -v nvcc >/dev/null 2>&1 && py_ok <<<'import torch; assert torch.cuda.is_available()'; then
    export FORCE_CUDA=1; echo "  CUDA toolkit and GPU found: building CUDA ops"
  fi
  STEP="mmcv $MMCV_VERSION: build from source (about 10 minutes on 2 cores)"
  echo "[mmkd setup] $STEP into $OUT"
  BUILD=$(mktemp -d)
  MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PYTHON" -m pip wheel --disable-pip-version-check -q \
    ${LOCKED[@]+"${LOCKED[@]}"} --no-build-isolation --no-deps "mmcv==$MMCV_VERSION" -w "$BUILD"
  mv "$BUILD"/mmcv-"$MMCV_VERSION"-*.whl "$OUT"/
  rm -rf "$BUILD"
  STEP="mmcv $MMCV_VERSION: install the built wheel"
  try_wheels_in "$OUT"
fi
mmcv_ok

step "mmdet 3.3.0, mmsegmentation 1.2.2 and the modules mmseg imports"
pip_install -r "$ROOT/requirements/runtime.txt"

# openmim's dependencies pin an old setuptools, so it comes after mmcv's build.
step "openmim"
pip_install openmim

step "test requirements"
pip_install -r "$ROOT/requirements/tests.txt"

step "mmkd (editable)"
# the import and the distribution metadata (what `mim` finds codebases by)
# must both be this checkout's: a clone at the path of an earlier, deleted
# one imports fine through the old path entry but has no metadata
py_ok <<<'
import importlib.metadata, mmkd, os
here = os.path.realpath("'"$ROOT"'/mmkd")
assert os.path.realpath(os.path.dirname(mmkd.__file__)) == here
dist = importlib.metadata.distribution("mmkd")
assert os.path.realpath(str(dist.locate_file("mmkd"))) == here' \
  || (cd "$ROOT" && "$PYTHON" -m pip install --disable-pip-version-check -q --no-build-isolation --no-deps -e .)

if [ "${MMKD_UNLOCKED:-0}" != 1 ]; then
  step "check every installed package of the lock file against its pin"
  # a kept torch build of another release is reported, not refused
  "$PYTHON" - "$LOCK" <<'EOF'
import importlib.metadata as md
import sys
wrong = []
for line in open(sys.argv[1]):
    line = line.split('#')[0].strip()
    if not line:
        continue
    name, version = line.split('==')
    try:
        found = md.version(name)
    except md.PackageNotFoundError:
        continue
    if found.split('+')[0] != version:
        wrong.append((name, f'{name} {found} (locked: {version})'))
for name, text in wrong:
    if name == 'torch':
        print('[mmkd setup] keeping the installed ' + text)
wrong = [text for name, text in wrong if name != 'torch']
if wrong:
    sys.exit('[mmkd setup] not the locked releases: ' + ', '.join(wrong)
             + '; run tools/setup.sh in a fresh venv')
EOF
fi

step "verify the stack"
"$PYTHON" - <<'EOF'
import torch, mmengine, mmcv, mmdet, mmseg, mmkd
from mmcv.ops import bbox_overlaps  # noqa: F401  (compiled ops)
print('[mmkd setup] ready: torch %s, mmengine %s, mmcv %s (ops), mmdet %s, '
      'mmseg %s, mmkd %s, CUDA %s' % (
          torch.__version__, mmengine.__version__, mmcv.__version__,
          mmdet.__version__, mmseg.__version__, mmkd.__version__,
          torch.cuda.is_available()))
EOF
