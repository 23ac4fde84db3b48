#!/usr/bin/env bash
# Installs, with no network, the wheels tools/gpu_wheels.sh prepared (the
# carried folder .gpu_wheels/) into a folder of their own on the lent GPU
# machine, after checking that the machine is what they were built for.
#
#   bash tools/gpu_install.sh [--wheels DIR] [--target DIR] [--check-only]
#   export PYTHONPATH=TARGET:REPO      # then, for the GPU check's Pythons
#
# --wheels DIR   the prepared wheels (default: .gpu_wheels); DIR/TARGET names
#                the Python, torch, CUDA and GPU architecture they were
#                built for, DIR/SHA256SUMS their checksums
# --target DIR   where to install them (default: /tmp/mmkd-site); the
#                image's own packages are left as they are
# --check-only   check the versions and checksums, install nothing
#
# Checked against TARGET: Python version and ABI (cp312), processor
# (x86_64), torch's version (2.11.0+cu130) and CUDA (13.0), and, where torch
# sees a GPU, its compute capability (9.0: the CUDA ops are built for sm_90
# alone).
#
# Environment: PYTHON (default: python3, the image's Python with torch).
# It stops at the first check that fails, saying what was expected, what
# was found and what to do; exit status 3 for a machine the wheels were not
# built for, 1 for anything else.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WHEELS="$ROOT/.gpu_wheels"
TARGET=/tmp/mmkd-site
CHECK_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEELS="$2"; shift ;;
    --target) TARGET="$2"; shift ;;
    --check-only) CHECK_ONLY=1 ;;
    -h|--help) sed -n '2,/^set /{/^set /!p}' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done
PY=${PYTHON:-python3}
STEP=start
fail() { echo "[gpu install] FAILED at step: $STEP" >&2; }
trap fail ERR
step() { STEP="$1"; echo "[gpu install] $1"; }

step "read $WHEELS/TARGET"
[ -f "$WHEELS/TARGET" ] || {
  echo "[gpu install] expected $WHEELS/TARGET (written by tools/gpu_wheels.sh); found no such file." \
       "Run tools/gpu_wheels.sh where pip works and carry .gpu_wheels with the call." >&2
  false; }

step "check this machine against what the wheels were built for"
# GPU: the architecture is checked only where torch sees a GPU (so the check
# can run on a CPU machine with --check-only)
"$PY" - "$WHEELS/TARGET" <<'EOF' || { fail; exit 3; }
import sys
want = dict(line.strip().split('=', 1) for line in open(sys.argv[1])
            if '=' in line and not line.startswith('#'))
try:
    import torch
except ImportError as e:
    sys.exit(f'[gpu install] expected torch {want["TORCH"]} in {sys.executable}; '
             f'found none ({e}). Set PYTHON to the Python that has it.')
import platform
found = dict(PYTHON='%d.%d' % sys.version_info[:2],
             ABI=('cp%d%d' % sys.version_info[:2]
                  if sys.implementation.name == 'cpython'
                  else sys.implementation.name) + getattr(sys, 'abiflags', ''),
             MACHINE=platform.machine(), TORCH=torch.__version__,
             CUDA=str(torch.version.cuda))
if torch.cuda.is_available():
    found['ARCH'] = '%d.%d' % torch.cuda.get_device_capability(0)
what = dict(PYTHON='Python', ABI='Python ABI', MACHINE='processor',
            TORCH='torch', CUDA="torch's CUDA",
            ARCH='GPU architecture (compute capability)')
wrong = [f'{what[k]}: prepared for {want[k]}, found {found[k]}'
         for k in what if k in found and k in want and found[k] != want[k]]
if wrong:
    sys.exit('[gpu install] this machine is not the one the wheels were built '
             'for:\n  ' + '\n  '.join(wrong) + '\n  Rebuild them for it: set '
             'the versions at the top of tools/gpu_wheels.sh and rerun it.')
print('  Python %(PYTHON)s (%(ABI)s, %(MACHINE)s), torch %(TORCH)s, CUDA %(CUDA)s' % found
      + (', sm_%s' % found['ARCH'].replace('.', '') if 'ARCH' in found
         else ', no GPU seen (architecture not checked)'))
EOF

step "check the wheels against $WHEELS/SHA256SUMS"
(cd "$WHEELS" && sha256sum -c --quiet SHA256SUMS) || {
  echo "[gpu install] expected the wheels listed in $WHEELS/SHA256SUMS with those checksums;" \
       "some differ or are missing (see above). Rerun tools/gpu_wheels.sh." >&2
  false; }
[ "$CHECK_ONLY" = 1 ] && { echo "[gpu install] checks passed (--check-only: nothing installed)"; exit 0; }

step "install the wheels into $TARGET (no index, no dependencies)"
rm -rf "$TARGET"
(cd "$WHEELS" && "$PY" -m pip install -q --disable-pip-version-check --no-index \
  --no-deps --no-compile --no-cache-dir --target "$TARGET" $(cut -d' ' -f3 SHA256SUMS))

step "import the stack from $TARGET, load mmcv's compiled ops, read an mmdet:: and an mmseg:: config"
MMKD_ROOT="$ROOT" PYTHONPATH="$TARGET:$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PY" - "$TARGET" <<'EOF'
import os, sys
import mmcv, mmdet, mmengine, mmseg, torch
from mmcv.ops import nms  # noqa: F401  (loads mmcv._ext)
import mmkd  # noqa: F401
from mmengine.config import Config
try:  # every Runner logs its environment through it
    from mmengine.utils.dl_utils import collect_env
    collect_env()
except ModuleNotFoundError as e:
    sys.exit(f"[gpu install] mmengine's runner imports {e.name!r}, which this "
             f'Python ({sys.version.split()[0]}) lacks: Python 3.12 has '
             "distutils only through setuptools' shim. Expected setuptools "
             'below 82 installed in this Python (torch 2.11.0 requires it); '
             'install it or carry its wheel with the others.')
target = os.path.realpath(sys.argv[1])
for module in (mmcv, mmdet, mmengine, mmseg):
    # what was installed here is what is imported (not an image's copy)
    if os.path.isdir(os.path.join(target, module.__name__)):
        assert os.path.realpath(module.__file__).startswith(target + os.sep), (
            f'expected {module.__name__} from {target}, found {module.__file__}')
# the published configs name their bases 'mmdet::...' / 'mmseg::...', which
# mmengine finds through pkg_resources in the packages' own .mim folders
for path in ('configs/fgfi/fgfi_faster-rcnn-r101-fpn_faster-rcnn-r50-fpn_1x_coco.py',
             'configs/skd/pspnet_r18-d8_4xb2-40k_cityscapes-512x1024.py'):
    Config.fromfile(os.path.join(os.environ['MMKD_ROOT'], path))
print('[gpu install] ready: torch %s, mmengine %s, mmcv %s (ops), mmdet %s, '
      'mmseg %s' % (torch.__version__, mmengine.__version__,
                    mmcv.__version__, mmdet.__version__, mmseg.__version__))
EOF
