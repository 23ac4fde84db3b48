"""tools/analysis_tools/step_files.py: the files of mmkd/ one training step
runs through."""
import os.path as osp

from mmkd.testing import load_tool_module


def test_the_fgfi_step_calls_its_components_not_the_subclass():
    calls = load_tool_module(
        'tools/analysis_tools/step_files.py').traced_step('fgfi')
    files = {osp.basename(path) for path in calls}
    # the step's flow, the region over the tap, the loss
    assert {'single_teacher_distiller.py', 'frozen_teacher.py',
            'feature_taps.py', 'imitation_region.py',
            'imitation.py'} <= files
    assert 'loss' in calls['mmkd/models/distillers/single_teacher_distiller.py']
    # composition: the detection distiller adds a component at build time,
    # and its file is not part of the step; the first step's checks are not
    # either
    assert 'detection_distiller.py' not in files
    assert 'connector_checks.py' not in files
