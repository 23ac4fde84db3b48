"""Install mmkd. ``mmkd/.mim`` gets the configs and tools, as in mmdet/mmseg,
so that ``mim train mmkd <config>`` and ``mim test mmkd <config>`` work."""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
MIM_FILES = ['tools', 'configs', 'projects']


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(ROOT, 'mmkd', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def read_requirements(name: str) -> list:
    with open(osp.join(ROOT, 'requirements', name)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def add_mim_extension() -> None:
    """Link (editable/develop) or copy (wheel/sdist) the mim files into
    ``mmkd/.mim``."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif {'sdist', 'bdist_wheel', 'install'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    mim_path = osp.join(ROOT, 'mmkd', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(ROOT, name)
        dst = osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if not osp.exists(src):
            continue
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        else:
            shutil.copytree(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmkd',
        version=read_version(),
        description='Knowledge distillation for dense prediction '
        '(SKD, FGFI) on OpenMMLab',
        long_description=open(osp.join(ROOT, 'README.md')).read(),
        long_description_content_type='text/markdown',
        packages=find_packages(exclude=('configs', 'tools', 'tests',
                                        'projects')),
        include_package_data=True,
        package_data={'mmkd': ['.mim/**/*']},
        python_requires='>=3.8',
        install_requires=read_requirements('runtime.txt'),
        extras_require={'tests': read_requirements('tests.txt'),
                        'mim': read_requirements('mminstall.txt')},
        license='Apache License 2.0',
        zip_safe=False)
