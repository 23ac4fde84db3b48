"""The GPU check's parts that run without a GPU: the script parses, its
options, and the one-step driver's report and exit status (a config that
fails makes it exit non-zero, the others still step); the install of the
carried wheels (tools/gpu_install.sh) with its checks of the machine and
the checksums; the one JSON and log of a run."""
import json
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


def _fake_wheels(tmp_path, target):
    """A wheels folder as tools/gpu_wheels.sh writes it: one small wheel,
    its SHA256SUMS and a TARGET naming ``target``."""
    import hashlib
    import zipfile
    wheels = tmp_path / 'wheels'
    wheels.mkdir()
    name = 'mmkd_probe-1.0-py3-none-any.whl'
    with zipfile.ZipFile(wheels / name, 'w') as z:
        z.writestr('mmkd_probe.py', 'VALUE = 7\n')
        z.writestr('mmkd_probe-1.0.dist-info/METADATA',
                   'Metadata-Version: 2.1\nName: mmkd-probe\nVersion: 1.0\n')
        z.writestr('mmkd_probe-1.0.dist-info/WHEEL',
                   'Wheel-Version: 1.0\nRoot-Is-Purelib: true\n'
                   'Tag: py3-none-any\n')
        z.writestr('mmkd_probe-1.0.dist-info/RECORD', '')
    digest = hashlib.sha256((wheels / name).read_bytes()).hexdigest()
    (wheels / 'SHA256SUMS').write_text(f'{digest}  {name}\n')
    (wheels / 'TARGET').write_text(
        '# test\n' + ''.join(f'{k}={v}\n' for k, v in target.items()))
    return wheels


def _this_machine():
    import platform

    import torch
    return dict(PYTHON='%d.%d' % sys.version_info[:2],
                ABI='cp%d%d' % sys.version_info[:2] + sys.abiflags,
                MACHINE=platform.machine(), TORCH=torch.__version__,
                CUDA=str(torch.version.cuda), ARCH='9.0')


def _run_check(tmp_path, wheels, only):
    out = tmp_path / 'out'
    proc = subprocess.run(
        ['bash', 'tools/gpu_check.sh', '--dry-run', '--only', only,
         '--wheels', str(wheels), '--out', str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHON=sys.executable,
                 MMKD_GPU_SITE=str(tmp_path / 'site'), OMP_NUM_THREADS='1'))
    with open(out / 'gpu_check.json') as f:
        record = json.load(f)
    with open(out / 'gpu_check.log') as f:
        log = f.read()
    return proc, record, log


def test_install_check_installs_the_wheels_and_writes_one_json_and_log(
        tmp_path):
    """Wheels prepared for this machine are installed into their own
    folder with no index, the stack imports, mmcv's ops run; the figures go
    to gpu_check.json, every check's output to gpu_check.log."""
    wheels = _fake_wheels(tmp_path, _this_machine())
    proc, record, log = _run_check(tmp_path, wheels, 'install,mmcv_ops')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (tmp_path / 'site' / 'mmkd_probe.py').exists()
    assert [(c['name'], c['status']) for c in record['checks']] == [
        ('install', 'PASS'), ('mmcv_ops', 'PASS')]
    assert record['passed'] and record['environment']['mmcv'] == '2.1.0'
    assert '[gpu install] ready: torch' in log
    assert 'OK mmcv ops on cpu' in log
    assert sorted(os.listdir(tmp_path / 'out')) == [
        'gpu_check.json', 'gpu_check.log']


def test_install_check_stops_the_check_on_another_machine(tmp_path):
    """Wheels prepared for another Python/processor/torch/CUDA (none of
    them this machine's, the lent GPU machine included, where this file
    runs among the GPU check's CUDA tests): the install check names each
    difference, nothing is installed and no later check runs."""
    wheels = _fake_wheels(tmp_path, dict(
        PYTHON='2.7', ABI='cp27', MACHINE='riscv64', TORCH='0.0.0+other',
        CUDA='0.0', ARCH='9.0'))
    proc, record, log = _run_check(tmp_path, wheels, 'install,mmcv_ops')
    assert proc.returncode == 1
    assert [(c['name'], c['status']) for c in record['checks']] == [
        ('install', 'FAIL')]
    assert not record['passed']
    assert ('Python: prepared for 2.7, found %d.%d'
            % sys.version_info[:2]) in log
    assert 'Python ABI: prepared for cp27, found cp3' in log
    assert 'processor: prepared for riscv64, found' in log
    assert 'torch: prepared for 0.0.0+other, found' in log
    assert "torch's CUDA: prepared for 0.0, found" in log
    assert 'stopped: install failed' in proc.stdout
    assert not (tmp_path / 'site').exists()


def test_install_refuses_wheels_that_differ_from_their_checksums(tmp_path):
    wheels = _fake_wheels(tmp_path, _this_machine())
    with open(wheels / 'mmkd_probe-1.0-py3-none-any.whl', 'ab') as f:
        f.write(b'\0')
    proc = subprocess.run(
        ['bash', 'tools/gpu_install.sh', '--wheels', str(wheels),
         '--target', str(tmp_path / 'site')], cwd=REPO, capture_output=True,
        text=True, timeout=300, env=dict(os.environ, PYTHON=sys.executable))
    assert proc.returncode == 1
    assert 'FAILED at step: check the wheels against' in proc.stderr
    assert not (tmp_path / 'site').exists()


def test_report_reads_each_step_and_the_largest_peak(tmp_path):
    sys.path.insert(0, os.path.join(REPO, 'tools'))
    try:
        from gpu_check_report import parse_steps, report
    finally:
        sys.path.pop(0)
    (tmp_path / 'steps.log').write_text(
        f'noise\nOK   {PIXEL}: 512x1024 x2: step 0.41 s, peak 3.25 GB, '
        f'loss 2.500\nFAIL {HOLISTIC}:\nTraceback ...\n'
        '1/2 configs stepped\n')
    (tmp_path / 'benchmark.json').write_text(json.dumps(dict(rows=[dict(
        peak_gb=dict(step=7.5, bound=6.0))])))
    rows = parse_steps((tmp_path / 'steps.log').read_text())
    assert rows == [dict(config=PIXEL, input='512x1024 x2', step_s=0.41,
                         peak_gb=3.25, loss=2.5, ok=True),
                    dict(config=HOLISTIC, ok=False)]
    record = report([dict(name='steps', status='FAIL', seconds=3,
                          limit_s=150, note='exit 1')], str(tmp_path), 480, 3)
    assert record['steps']['steps'] == rows
    assert record['peak_gpu_gb'] == 7.5 and not record['passed']
