"""Run the repository's tools as a user does, and read what they wrote, for
end-to-end tests (a source checkout: ``tools/`` beside ``mmkd/``)."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from types import ModuleType
from typing import Mapping, Optional, Sequence

from .tiny_configs import REPO_ROOT


def run_tool(args: Sequence[str],
             env: Optional[Mapping[str, str]] = None,
             timeout: float = 600) -> str:
    """Run a command from the repository root and return its output.

    Raises:
        AssertionError: When it exits with a non-zero status; the message
            holds the end of its stdout and stderr.
    """
    env = dict(os.environ, **(env or {}))
    proc = subprocess.run(list(args), cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f'{args} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n'
        f'{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


def load_tool_module(path: str) -> ModuleType:
    """A tool script of the repository (``path`` relative to its root, e.g.
    ``'tools/visualize_imitation_mask.py'``) imported as a module, for
    tests of its functions."""
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(
        name, osp.join(REPO_ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def train_with_tool(config: str, work_dir, *extra: str) -> str:
    """``python tools/train.py CONFIG --work-dir WORK_DIR EXTRA...``."""
    return run_tool([sys.executable, 'tools/train.py', config, '--work-dir',
                     str(work_dir), *extra])


def load_plain_checkpoint(path) -> dict:
    """``torch.load(weights_only=True)`` with no allow-list: what a student
    checkpoint must satisfy for the stock test scripts."""
    import torch
    return torch.load(path, map_location='cpu', weights_only=True)


def load_training_checkpoint(path) -> dict:
    """A full training checkpoint (message hub, numpy values), through
    mmkd's allow-list."""
    from mmkd.checkpoint import safe_torch_load
    return safe_torch_load(str(path))
