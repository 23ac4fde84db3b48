"""A config file runs as Python: a second top-level assignment of a name
replaces the first, silently (the demo's F and G variants once lost their
``region`` so). No config of the repository assigns a name twice."""
import ast
import glob
import os.path as osp

import pytest

from mmkd.testing import REPO_ROOT

CONFIGS = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '**', '*.py'), recursive=True) +
    glob.glob(osp.join(REPO_ROOT, 'projects', '*', 'configs', '**', '*.py'),
              recursive=True))


def twice_assigned(source: str) -> list:
    """The names a module assigns more than once at its top level."""
    seen, twice = set(), []
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        for target in targets:
            if isinstance(target, ast.Name):
                if target.id in seen:
                    twice.append(target.id)
                seen.add(target.id)
    return twice


def test_the_check_finds_a_second_assignment():
    assert twice_assigned("model = dict(a=1)\nx = 2\nmodel = dict(b=3)\n") \
        == ['model']
    assert twice_assigned("model = dict(a=1, b=3)\n") == []


def test_there_are_configs():
    assert len(CONFIGS) > 20


@pytest.mark.parametrize('path', CONFIGS,
                         ids=[osp.relpath(p, REPO_ROOT) for p in CONFIGS])
def test_no_config_assigns_a_name_twice(path):
    with open(path) as f:
        assert twice_assigned(f.read()) == [], path
