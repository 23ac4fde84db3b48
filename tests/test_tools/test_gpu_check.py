"""The GPU check's parts that run without a GPU: the script parses, its
options, and the one-step driver's report and exit status (a config that
fails makes it exit non-zero, the others still step)."""
import os
import subprocess
import sys

from mmkd.testing import REPO_ROOT as REPO

PIXEL = ('configs/skd/skd-pixel_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_'
         'cityscapes-512x1024.py')
HOLISTIC = ('configs/skd/skd-holistic_pspnet-r101-d8_pspnet-r18-d8_4xb2-'
            '40k_cityscapes-512x1024.py')


def test_script_parses_and_refuses_unknown_options():
    script = os.path.join(REPO, 'tools', 'gpu_check.sh')
    assert subprocess.run(['bash', '-n', script]).returncode == 0
    help_ = subprocess.run(['bash', script, '--help'], capture_output=True,
                           text=True)
    assert help_.returncode == 0 and 'steps_amp' in help_.stdout
    assert subprocess.run(['bash', script, '--bogus'],
                          capture_output=True).returncode == 2


def test_step_driver_reports_each_config_and_fails_on_any():
    """At 1/8 of the Cityscapes crop the pixel-wise config steps; the
    holistic critic needs >= 512x512 inputs, so that config fails."""
    proc = subprocess.run(
        [sys.executable, 'tools/gpu_check_steps.py', '--device', 'cpu',
         '--size-scale', '0.125', '--configs', PIXEL, HOLISTIC],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f'OK   {PIXEL}: 64x128 x2: step' in proc.stdout
    assert f'FAIL {HOLISTIC}:' in proc.stdout
    assert 'SegDiscriminator input of 8×16 is too small' in proc.stdout
    assert f"1/2 configs stepped; failed: ['{HOLISTIC}']" in proc.stdout
