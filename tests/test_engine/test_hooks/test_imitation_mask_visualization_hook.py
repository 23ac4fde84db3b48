"""ImitationMaskVisualizationHook: it sends the distiller's imitation
masks of a training batch to the visualizer, in a real tiny FGFI run, and
draws nothing for a model without masks."""
import glob
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from mmkd.testing import tiny_config_path
from mmkd.utils.config_checks import ConfigValueError, describe

FGFI = tiny_config_path('fgfi_faster_rcnn_r50_r18_tiny_shapes')


def test_hook_sends_masks_to_the_visualizer(tiny_data, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmkd.engine.runner_config import prepare_config
    cfg = Config.fromfile(FGFI)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.custom_hooks = [
        dict(type='mmkd.ImitationMaskVisualizationHook', interval=1)]
    # a visualizer of its own (mmengine keeps instances by name)
    cfg.visualizer.name = f'fgfi_mask_hook_{tmp_path.name}'
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # no eval
    prepare_config(cfg)
    runner = Runner.from_cfg(cfg)
    runner.train()
    # the hook ran the student in eval mode after the last step, and undid it
    assert runner.model.student.training
    images = sorted(glob.glob(osp.join(
        cfg.work_dir, '*', 'vis_data', 'vis_image', 'imitation_mask_*.png')))
    assert [osp.basename(p) for p in images] == [
        'imitation_mask_1.png', 'imitation_mask_2.png']
    for path in images:
        picture = Image.open(path)
        picture.verify()
        # one 64x64 image, 5 panels of 64x64 (+16 title) in 2 rows of 3
        assert picture.size == (3 * (64 + 4) - 4, 2 * (16 + 64 + 4) - 4)


def test_hook_draws_nothing_for_a_model_without_masks():
    from mmkd.engine.hooks import ImitationMaskVisualizationHook
    sent = []
    runner = SimpleNamespace(
        model=torch.nn.Linear(2, 2), iter=0,
        visualizer=SimpleNamespace(add_image=lambda *a, **k: sent.append(a)))
    hook = ImitationMaskVisualizationHook(interval=1)
    hook.after_train_iter(runner, 0, data_batch=dict(inputs=[]))
    assert sent == []
    for interval in (0, 2.5, '50'):
        with pytest.raises(ConfigValueError) as e:
            ImitationMaskVisualizationHook(interval=interval)
        assert e.value.key == 'interval'
        assert e.value.expected == 'an int >= 1'
        assert e.value.found == describe(interval)
    with pytest.raises(ConfigValueError) as e:
        ImitationMaskVisualizationHook(scale=0)
    assert e.value.key == 'scale'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == '0'
    with pytest.raises(ConfigValueError) as e:
        ImitationMaskVisualizationHook(name='')
    assert e.value.key == 'name'
    assert e.value.expected == 'a non-empty str'
    assert e.value.found == "'' (str)"
