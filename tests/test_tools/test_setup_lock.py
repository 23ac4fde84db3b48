"""The set-up installs one tested, fully pinned set: the lock file
``requirements/constraints.txt`` pins every package exactly, every pip
install of ``tools/setup.sh`` uses it, the stack's own pins agree with it and
the README's compatibility table states its versions."""
import re
from pathlib import Path

from mmkd.testing import REPO_ROOT

ROOT = Path(REPO_ROOT)
LOCK = ROOT / 'requirements' / 'constraints.txt'


def _canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def _lock() -> dict:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split('#')[0].strip()
        if not line:
            continue
        match = re.fullmatch(r'([A-Za-z0-9._-]+)==([0-9][0-9A-Za-z.]*)', line)
        assert match, f'not an exact pin: {line!r}'
        name = _canonical(match.group(1))
        assert name not in pins, f'{name} pinned twice'
        pins[name] = match.group(2)
    return pins


def test_lock_pins_the_whole_stack_exactly():
    pins = _lock()
    # the stack, what it pulls in, the build tools and the test runner
    for name in ('torch', 'mmengine', 'mmcv', 'mmdet', 'mmsegmentation',
                 'openmim', 'numpy', 'pytest', 'pluggy', 'setuptools',
                 'wheel', 'ninja', 'ftfy', 'regex', 'matplotlib',
                 'opencv-python', 'pycocotools', 'scipy', 'sympy'):
        assert name in pins, name
    assert 'mmkd' not in pins and 'pip' not in pins
    assert pins['torch'] == '2.13.0'  # no local label such as +cpu


def test_requirement_files_agree_with_the_lock():
    pins = _lock()
    for path in (ROOT / 'requirements').glob('*.txt'):
        if path == LOCK:
            continue
        for line in path.read_text().splitlines():
            line = line.split('#')[0].strip()
            if not line:
                continue
            name, _, version = line.partition('==')
            assert _canonical(name) in pins, (path.name, line)
            if version:
                assert pins[_canonical(name)] == version, (path.name, line)


def test_every_pip_install_of_the_setup_uses_the_lock():
    script = (ROOT / 'tools' / 'setup.sh').read_text()
    code = [line for line in script.replace('\\\n', ' ').splitlines()
            if not line.lstrip().startswith('#')]
    pip_calls = [line for line in code
                 if re.search(r'-m pip (install|wheel)', line)]
    assert len(pip_calls) == 3  # pip_install, the mmcv build, mmkd -e
    for line in pip_calls:
        if '-e .' in line:  # mmkd itself: --no-deps, nothing resolved
            assert '--no-deps' in line
        else:
            assert 'LOCKED[@]' in line, line
    assert 'LOCK="$ROOT/requirements/constraints.txt"' in script
    # no other way into pip
    assert not [line for line in code if re.search(r'\bpip3? ', line)
                and line not in pip_calls]


def test_readme_compatibility_table_states_the_locked_versions():
    pins = _lock()
    readme = (ROOT / 'README.md').read_text()
    section = readme.split('### Compatibility', 1)[1].split('\n#', 1)[0]
    rows = [line.split('|')[1:3] for line in section.splitlines()
            if line.startswith('| ') and not line.startswith('| package')]
    checked = 0
    for package, version in rows:
        package, version = package.strip(), version.strip()
        if package == 'Python':
            continue
        assert _canonical(package) in pins, package
        assert version.split(' ')[0].rstrip(',') == pins[
            _canonical(package)], (package, version)
        checked += 1
    assert checked >= 8
