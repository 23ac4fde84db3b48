"""Every config under configs/skd/ (the distillation configs, their shared
base and the 40k baseline; through them the values they share,
_base_/skd_terms.py and skd_critic.py) builds through mmengine and trains one step, with
its real student and teacher architectures on a tiny input; and the clear
errors for the inputs an SKD config can get wrong.

Shrinking for CPU is this test's job, not the configs': 64x64 images, batch
2 (PSPNet's 1x1 pyramid pooling needs more than one sample in training),
a random teacher (``teacher_checkpoint=None``), no pretrained student, the
data preprocessor's padding size set to 64x64. SyncBN is left in the configs:
the student's is reverted to BN as mmengine's Runner does outside distributed
training; the teacher is not a registered module (the Runner does not reach
it), but it runs in eval mode, where torch's SyncBatchNorm uses its running
statistics without a process group, on CPU too. The critic of the holistic
term keeps the config's ``in_channels`` but gets a two-layer layout for the
8x8 (16x16 for DeepLabV3+) logits of a 64x64 image: the official layout needs
64x64 logits. A separate check runs the config's own critic on logits of the
published crop size.
"""
import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.registry import MODELS, PARAM_SCHEDULERS, DefaultScope

from mmkd.testing import REPO_ROOT as REPO
from mmkd.testing import demo_seg_inputs
from mmkd.utils.config_checks import ConfigValueError

SKD = osp.join(REPO, 'configs', 'skd')
# every config with a model: _base_/skd_terms.py and skd_critic.py hold the
# values the others take as base variables, and are tested through them
HELPERS = ('skd_terms.py', 'skd_critic.py')
CONFIGS = sorted(
    p for p in glob.glob(osp.join(SKD, '*.py')) +
    glob.glob(osp.join(SKD, '_base_', '*.py'))
    if osp.basename(p) not in HELPERS)
SIZE = 64
SMALL_CRITIC = dict(conv_channels=(64, 128), attn_after=(1, ),
                    last_kernel_size=2)
R18 = '_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x1024'
R18_PIXEL, R18_PAIR, R18_HOLISTIC = (
    f'skd-{terms}{R18}' for terms in ('pixel', 'pair', 'holistic'))


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny inputs gain nothing from intra-op threads, and on a shared
    machine threads waiting for each other cost most of the time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def config_id(path):
    return osp.relpath(path, SKD)


def load(name_or_path):
    path = name_or_path if osp.isfile(name_or_path) else osp.join(
        SKD, name_or_path + '.py')
    return Config.fromfile(path)


def student_of(model_cfg):
    """The student's config of a distiller; a baseline config is its own."""
    return model_cfg.student if 'student' in model_cfg else model_cfg


def shrink(cfg):
    """The config's model dict, made CPU-sized (see the module doc)."""
    model = copy.deepcopy(cfg.model)
    student = student_of(model)
    student.pretrained = None
    student.data_preprocessor.size = (SIZE, SIZE)
    if 'teacher' in model:
        model.teacher_checkpoint = None
    if model.get('discriminator'):
        model.discriminator.update(SMALL_CRITIC)
    return model


def build(model_cfg, scope):
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(model_cfg)
        model.init_weights()  # the student's own init: nothing to download
    # what mmengine's Runner does to the registered modules when training
    # is not distributed
    return revert_sync_batchnorm(model).train()


def batch(num_classes, n=2, size=SIZE, seed=0):
    return demo_seg_inputs(n, size, num_classes, seed)


def crop_size(cfg):
    return tuple(student_of(cfg.model).data_preprocessor.size)


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_builds_and_trains_one_step(path):
    cfg = load(path)
    scope = cfg.default_scope
    distiller = cfg.model.type == 'mmkd.SingleTeacherDistiller'
    # the one plain config is the baseline on the same schedule
    assert distiller or osp.basename(path).startswith('pspnet_r18-d8_')
    # the published schedule: every scheduler ends with the training
    schedulers = cfg.param_scheduler
    groups = (schedulers.values() if isinstance(schedulers, dict)
              else [schedulers])
    for group in groups:
        for scheduler in group:
            assert scheduler.end == cfg.train_cfg.max_iters

    # the Runner gives a model dict without data_preprocessor (a distiller)
    # the top-level one: it must be the student's
    top = {k: v for k, v in cfg.data_preprocessor.items() if k != '_scope_'}
    assert top == student_of(cfg.model).data_preprocessor

    model = build(shrink(cfg), scope)
    if distiller:
        assert any(isinstance(m, torch.nn.SyncBatchNorm)
                   for m in model.teacher.modules())
    with DefaultScope.overwrite_default_scope(scope):
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        if isinstance(schedulers, dict):
            assert set(schedulers) == set(optim_wrapper.keys())
            for key, group in schedulers.items():
                for scheduler in group:
                    PARAM_SCHEDULERS.build(
                        dict(scheduler, optimizer=optim_wrapper[key]))
    names = list(cfg.model.get('distill_losses', {}))
    holistic = [n for n, c in cfg.model.get('distill_losses', {}).items()
                if c.type == 'mmkd.HolisticLoss']
    if holistic:
        assert isinstance(optim_wrapper, OptimWrapperDict)
        assert cfg.model_wrapper_cfg.type == \
            'MMSeparateDistributedDataParallel'

    num_classes = student_of(cfg.model).decode_head.num_classes
    log_vars = model.train_step(batch(num_classes), optim_wrapper)

    expected = {f'distill.loss_{n}' for n in names}
    assert expected <= set(log_vars)
    assert not {k for k in log_vars if k.startswith('distill.')} - expected
    if holistic:
        expected |= {'disc.loss', 'disc.wasserstein',
                     'disc.gradient_penalty'}
        assert expected <= set(log_vars)
    for key in expected | {'loss'}:
        assert torch.isfinite(torch.as_tensor(log_vars[key])), key

    if holistic:
        # the config's own critic scores logits of the published crop size
        logits = model.student_taps.paths[
            cfg.model.distill_losses[holistic[0]].student]
        stride = SIZE // _tap_side(model, logits, num_classes)
        with DefaultScope.overwrite_default_scope(scope):
            critic = MODELS.build(cfg.model.discriminator)
        h, w = (side // stride for side in crop_size(cfg))
        scores = critic(torch.zeros(2, critic.in_channels, h, w))
        assert scores.shape == (2, )


def _tap_side(model, path, num_classes):
    """The height of the student's tapped logits for a SIZE x SIZE image."""
    module = dict(model.student.named_modules())[path]
    out = {}
    handle = module.register_forward_hook(
        lambda m, a, o: out.setdefault('shape', o.shape))
    try:
        with torch.no_grad():
            data = model.data_preprocessor(batch(num_classes), False)
            model.student(data['inputs'], data['data_samples'],
                          mode='tensor')
    finally:
        handle.remove()
    return out['shape'][-2]


# --------------------------------------------------------------- bad inputs
def small_teacher(cfg, num_classes):
    """The student's own architecture as the teacher (cheap), with another
    number of classes."""
    teacher = copy.deepcopy(cfg.model.student)
    teacher.pretrained = None
    teacher.decode_head.num_classes = num_classes
    teacher.auxiliary_head.num_classes = num_classes
    return teacher


def test_pixel_term_with_other_classes_names_the_config_key():
    cfg = load(R18_PIXEL)
    model_cfg = shrink(cfg)
    model_cfg.teacher = small_teacher(cfg, num_classes=21)
    model = build(model_cfg, cfg.default_scope)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    with pytest.raises(ValueError,
                       match=r'model\.distill_losses\.pixel.*19 classes, '
                       r'teacher 21'):
        model.train_step(batch(19), optim_wrapper)


def test_pair_term_on_a_tap_of_several_maps():
    cfg = load(R18_PAIR)
    model_cfg = shrink(cfg)
    model_cfg.teacher = small_teacher(cfg, num_classes=19)
    # the pyramid's list of pooled maps (4 scales), not the PSP module's
    # output: taken as 4 levels against the teacher's one map
    model_cfg.student_taps.feat = 'decode_head.psp_modules'
    model = build(model_cfg, cfg.default_scope)
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    with pytest.raises(ValueError, match=(
            r'^model\.distill_losses\.pair: PairWiseLoss: the student tap '
            'has 4 levels but the teacher tap has 1')):
        model.train_step(batch(19), optim_wrapper)


def test_pair_term_takes_at_most_one_node_definition():
    cfg = load(R18_PAIR)
    model_cfg = shrink(cfg)
    model_cfg.teacher = small_teacher(cfg, num_classes=19)
    model_cfg.distill_losses.pair.update(node_size=2, pool_scale=0.5)
    with pytest.raises(ConfigValueError) as e:
        build(model_cfg, cfg.default_scope)
    assert e.value.key == 'model.distill_losses.pair.node_size'
    assert e.value.expected == 'at most one of node_size and pool_scale'
    assert e.value.found == 'node_size=2, pool_scale=0.5'


def test_pair_term_without_a_node_definition_is_the_official_one():
    cfg = load(R18_PAIR)
    model_cfg = shrink(cfg)
    model_cfg.teacher = small_teacher(cfg, num_classes=19)
    model_cfg.distill_losses.pair.update(node_size=None, pool_scale=None)
    pair = build(model_cfg, cfg.default_scope).distill_losses.pair
    assert (pair.pool, pair.pool_scale) == ('max', 0.5)


@pytest.mark.parametrize('optim_cfg', [
    dict(type='OptimWrapper', optimizer=dict(type='SGD', lr=0.01)),
    dict(constructor='mmkd.DistillerOptimWrapperConstructor',
         student=dict(optimizer=dict(type='SGD', lr=0.01))),
], ids=['plain', 'student-only'])
def test_holistic_term_without_a_discriminator_optimizer(optim_cfg):
    cfg = load(R18_HOLISTIC)
    model_cfg = shrink(cfg)
    model_cfg.teacher = small_teacher(cfg, num_classes=19)
    model = build(model_cfg, cfg.default_scope)
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        optim_wrapper = build_optim_wrapper(model, optim_cfg)
    with pytest.raises(ConfigValueError) as e:
        model.train_step(batch(19), optim_wrapper)
    assert e.value.key == 'optim_wrapper'
    assert e.value.expected.startswith(
        "'student' and 'discriminator' entries: the holistic term")
