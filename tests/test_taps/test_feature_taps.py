"""FeatureTaps return what their module output when it ran: a later in-place
operation (mmcv ConvModule's ReLU after its norm) does not reach them, and a
tap inside a reentrant gradient-checkpointed block raises instead of
recording a tensor without gradient."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn import ConvModule

from mmkd.testing import tiny_config
from mmkd.taps.feature_taps import COPY, REFERENCE, FeatureTaps


def conv_bn_relu() -> nn.Module:
    """mmcv's ConvModule: conv -> BN -> ReLU(inplace=True) on the BN's
    output tensor."""
    torch.manual_seed(0)
    module = ConvModule(3, 4, 3, padding=1, norm_cfg=dict(type='BN'))
    assert module.activate.inplace
    return nn.Sequential(module, nn.Conv2d(4, 2, 1))


def norm_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The norm's output computed on a copy of the model without the
    ReLU (train-mode BN: batch statistics)."""
    module = copy.deepcopy(model[0])
    return module.bn(module.conv(x))


def test_norm_tap_before_inplace_relu_holds_the_norm_output():
    model = conv_bn_relu().train()
    taps = FeatureTaps(model, dict(pre='0.bn', post='0'), 'model.taps')
    x = torch.randn(2, 3, 6, 6)
    expected = norm_output(model, x)
    assert (expected < 0).float().mean() > 0.3  # what a ReLU would erase
    for _ in range(3):  # probe step, then the settled mode
        with taps.recording():
            out = model(x)
            pre, post = taps['pre'], taps['post']
            torch.testing.assert_close(pre, expected, rtol=0, atol=0)
            torch.testing.assert_close(post, expected.relu(), rtol=0, atol=0)
            # the model went on with its own (ReLU'd) tensor
            torch.testing.assert_close(
                out, model[1](expected.relu()), rtol=0, atol=0)
    assert taps.modes == dict(pre=COPY, post=REFERENCE)


def test_gradients_reach_the_model_through_a_copied_tap():
    model = conv_bn_relu().train()
    taps = FeatureTaps(model, dict(pre='0.bn'), 'model.taps')
    x = torch.randn(2, 3, 6, 6)
    weight = torch.randn(1, 4, 6, 6)
    reference = copy.deepcopy(model[0])
    (reference.bn(reference.conv(x)) * weight).sum().backward()
    for _ in range(2):
        model.zero_grad()
        with taps.recording():
            model(x)
            loss = (taps['pre'] * weight).sum()
        loss.backward()
        torch.testing.assert_close(model[0].conv.weight.grad,
                                   reference.conv.weight.grad)
        torch.testing.assert_close(model[0].bn.weight.grad,
                                   reference.bn.weight.grad)
    assert taps.modes['pre'] == COPY


def test_an_unchanged_output_is_referenced_not_copied():
    model = conv_bn_relu()
    taps = FeatureTaps(model, dict(out='1'), 'model.taps')
    x = torch.randn(2, 3, 6, 6)
    with taps.recording():
        out = model(x)
        first = taps['out']
    assert first is not out and torch.equal(first, out)  # probe: a copy
    with taps.recording():
        out = model(x)
        assert taps['out'] is out  # settled: the output itself, no copy
    assert taps.modes['out'] == REFERENCE


class SometimesInplace(nn.Module):
    """A norm followed by a ReLU that is in place only when asked."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.inplace = False

    def forward(self, x):
        y = self.bn(x)
        return y.relu_() if self.inplace else y.relu()


def test_a_referenced_output_changed_later_raises():
    model = SometimesInplace()
    taps = FeatureTaps(model, dict(pre='bn'), 'model.student_taps')
    x = torch.randn(2, 4, 3, 3)
    with taps.recording():
        model(x)
        taps['pre']
    assert taps.modes['pre'] == REFERENCE
    model.inplace = True  # another path than in the first step
    with taps.recording():
        model(x)
        with pytest.raises(
                RuntimeError,
                match=r"model\.student_taps\.pre: the output of module 'bn' "
                r'was changed in place .*version counter moved from 0 to 1.*'
                'inplace=False'):
            taps['pre']
    assert taps.modes['pre'] == COPY
    with taps.recording():  # the next step is right again
        model(x)
        assert (taps['pre'] < 0).any()


def test_a_module_run_twice_gives_each_call_its_own_output():
    # A head shared by two levels, each output ReLU'd in place afterwards.
    conv = nn.Conv2d(3, 3, 1)
    model = nn.ModuleDict(dict(head=conv))
    taps = FeatureTaps(model, dict(head='head'), 'model.taps')
    levels = [torch.randn(1, 3, 4, 4), torch.randn(1, 3, 2, 2)]
    for _ in range(2):
        with taps.recording():
            for level in levels:
                conv(level).relu_()
            values = taps['head']
        assert len(values) == 2
        for value, level in zip(values, levels):
            torch.testing.assert_close(value, conv(level), rtol=0, atol=0)
    assert taps.modes['head'] == COPY


def test_a_tuple_output_is_copied_element_by_element():

    class TwoLevels(nn.Module):

        def forward(self, x):
            return x * 2, x * 3

    model = nn.Sequential(TwoLevels())
    taps = FeatureTaps(model, dict(levels='0'), 'model.taps')
    x = torch.randn(1, 2, 3, 3)
    with taps.recording():
        a, b = model(x)
        b.relu_()
        values = taps['levels']
    assert isinstance(values, tuple)
    torch.testing.assert_close(values[0], x * 2, rtol=0, atol=0)
    torch.testing.assert_close(values[1], x * 3, rtol=0, atol=0)
    assert taps.modes['levels'] == COPY


def frozen_teacher() -> nn.Module:
    model = conv_bn_relu().eval()
    model.requires_grad_(False)
    return model


def test_teacher_taps_under_no_grad_hold_the_norm_output():
    model = frozen_teacher()
    taps = FeatureTaps(model, dict(pre='0.bn'), 'model.teacher_taps')
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        expected = model[0].bn(model[0].conv(x))
    for _ in range(2):
        with taps.recording():
            with torch.no_grad():
                model(x)
            # read with gradients on (the distiller's loss): no error
            torch.testing.assert_close(taps['pre'], expected, rtol=0, atol=0)


class CheckpointedBlock(nn.Module):
    """conv -> BN -> ReLU(inplace) -> conv, run under
    ``torch.utils.checkpoint`` as mmseg's ``with_cp=True`` blocks are."""

    def __init__(self, use_reentrant: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.stem = nn.Conv2d(3, 4, 1)
        self.inner = nn.Sequential(
            ConvModule(4, 4, 3, padding=1, norm_cfg=dict(type='BN')),
            nn.Conv2d(4, 4, 1))
        self.use_reentrant = use_reentrant

    def forward(self, x):
        return cp.checkpoint(
            self.inner, self.stem(x), use_reentrant=self.use_reentrant)


def test_tap_inside_a_reentrant_checkpoint_raises():
    model = nn.Sequential(CheckpointedBlock(use_reentrant=True)).train()
    taps = FeatureTaps(model, dict(pre='0.inner.0.bn', block='0'),
                       'model.student_taps')
    x = torch.randn(2, 3, 5, 5)
    with taps.recording():
        model(x)
        with pytest.raises(
                RuntimeError,
                match=r"model\.student_taps\.pre: module '0\.inner\.0\.bn' "
                'ran with gradients disabled.*only its connector.*'
                r'with_cp=True.*Tap the module that runs the checkpoint'):
            taps['pre']
        # the output of the module that runs the checkpoint has its gradient
        assert taps['block'].grad_fn is not None
        with torch.no_grad():  # nothing to train: reading is fine
            taps['pre']
    model.eval()  # the teacher's case: eval mode, parameters frozen
    model.requires_grad_(False)
    with taps.recording():
        model(x.requires_grad_())
        taps['pre']


def test_tap_inside_a_non_reentrant_checkpoint_gets_its_gradient():
    model = CheckpointedBlock(use_reentrant=False).train()
    plain = copy.deepcopy(model)
    taps = FeatureTaps(model, dict(pre='inner.0.bn'), 'model.student_taps')
    x = torch.randn(2, 3, 5, 5)
    weight = torch.randn(1, 4, 5, 5)
    plain_bn = plain.inner[0]
    expected = plain_bn.bn(plain_bn.conv(plain.stem(x)))
    (expected * weight).sum().backward()
    for _ in range(2):
        model.zero_grad()
        with taps.recording():
            model(x)
            value = taps['pre']
        torch.testing.assert_close(value, expected.detach())
        (value * weight).sum().backward()
        for name in ('stem.weight', 'inner.0.conv.weight', 'inner.0.bn.bias'):
            torch.testing.assert_close(
                model.get_parameter(name).grad,
                plain.get_parameter(name).grad,
                msg=name)


# mmseg calls torch.utils.checkpoint without use_reentrant (a warning; the
# reentrant variant)
@pytest.mark.filterwarnings('ignore:.*use_reentrant')
def test_tap_inside_an_mmseg_resnet_block_with_cp():
    from mmseg.models.backbones.resnet import BasicBlock
    torch.manual_seed(0)
    model = nn.Sequential(BasicBlock(4, 4, with_cp=True)).train()
    taps = FeatureTaps(model, dict(bn='0.bn1', block='0'),
                       'model.student_taps')
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    with taps.recording():
        model(x)
        with pytest.raises(RuntimeError, match=r"student_taps\.bn.*with_cp"):
            taps['bn']
        # tapping the block itself (the way out the error names) trains it
        taps['block'].sum().backward()
    assert model[0].conv1.weight.grad.abs().sum() > 0


def test_distiller_tap_on_a_bottleneck_norm_holds_pre_activation_values():
    """A pre-activation tap: decode_head.bottleneck.bn of an mmseg PSPNet,
    whose ConvModule applies ReLU(inplace=True) to the norm's output."""
    from mmkd.registry import MODELS
    from mmkd.testing import demo_seg_inputs
    model_cfg = tiny_config('hint_pspnet_r50_r18_tiny_shapes').model
    taps = dict(pre='decode_head.bottleneck.bn', feat='decode_head.bottleneck',
                conv='decode_head.bottleneck.conv')
    model_cfg.student_taps = model_cfg.teacher_taps = taps
    model_cfg.distill_losses.hint.update(student='pre', teacher='pre')
    model = MODELS.build(model_cfg).train()
    data = model.data_preprocessor(demo_seg_inputs(), True)
    for _ in range(2):
        with model.teacher_taps.recording(), model.student_taps.recording():
            with torch.no_grad():
                model.run_teacher(data['inputs'], data['data_samples'])
            model.student(**data, mode='loss')
            for net, net_taps in ((model.student, model.student_taps),
                                  (model.teacher, model.teacher_taps)):
                pre = net_taps['pre']
                with torch.no_grad():
                    expected = net.decode_head.bottleneck.bn(net_taps['conv'])
                torch.testing.assert_close(pre, expected)
                assert (pre < 0).float().mean() > 0.2
                torch.testing.assert_close(net_taps['feat'], pre.relu())
    model.student.zero_grad()
    model(**data, mode='loss')['distill.loss_hint'].backward()
    bottleneck = model.student.decode_head.bottleneck
    for param in (bottleneck.conv.weight, bottleneck.bn.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0


class HeadWithList(nn.Module):
    """A head whose per-level convs live in an nn.ModuleList, as RTMDet's
    ``bbox_head.rtm_cls``: the list itself is never called."""

    def __init__(self):
        super().__init__()
        self.cls = nn.ModuleList([nn.Conv2d(2, 3, 1), nn.Conv2d(2, 3, 1)])
        self.by_name = nn.ModuleDict(dict(a=nn.Identity()))

    def forward(self, x):
        return [conv(x) for conv in self.cls]


@pytest.mark.parametrize('path, found, hint', [
    ('cls', "'cls', a ModuleList of 2 items",
     "Tap its items, e.g. cls='cls.0'; all of them: dict(cls_0='cls.0', "
     "cls_1='cls.1')."),
    ('by_name', "'by_name', a ModuleDict of 1 items",
     "Tap its items, e.g. cls='by_name.a'.")])
def test_a_container_tap_is_refused_when_built(path, found, hint):
    from mmkd.utils.config_checks import ConfigValueError
    with pytest.raises(ConfigValueError) as error:
        FeatureTaps(HeadWithList(), dict(cls=path), 'model.student_taps')
    assert error.value.key == 'model.student_taps.cls'
    assert error.value.found == found
    assert error.value.hint == hint
    # its items run, and are tapped
    taps = FeatureTaps(HeadWithList(), dict(c0='cls.0', c1='cls.1'),
                       'model.student_taps')
    with taps.recording():
        taps.model(torch.ones(1, 2, 2, 2))
        assert taps['c0'].shape == taps['c1'].shape == (1, 3, 2, 2)


def test_a_tap_that_did_not_run_names_its_model_and_no_misleading_hint():
    taps = FeatureTaps(HeadWithList(), dict(a='by_name.a'),
                       'model.student_taps')
    with taps.recording():
        taps.model(torch.ones(1, 2, 2, 2))
        with pytest.raises(RuntimeError) as error:
            taps['a']
    message = str(error.value)
    assert message.startswith("model.student_taps.a: module 'by_name.a' of "
                              'HeadWithList did not run')
    assert 'teacher_forward' not in message


def test_a_container_with_its_own_forward_is_tapped():
    """mmseg's PPM is an nn.ModuleList with a forward: it runs, and its
    tap records what it returns."""

    class Pyramid(nn.ModuleList):

        def forward(self, x):
            return [m(x) for m in self]

    class Model(nn.Module):

        def __init__(self):
            super().__init__()
            self.ppm = Pyramid([nn.Identity(), nn.Identity()])

        def forward(self, x):
            return self.ppm(x)

    taps = FeatureTaps(Model(), dict(ppm='ppm'), 'model.student_taps')
    with taps.recording():
        taps.model(torch.ones(1, 2, 2, 2))
        assert [t.shape for t in taps['ppm']] == [(1, 2, 2, 2)] * 2


def test_outputs_per_call_and_their_replacement_inside_a_recording():
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU())
    taps = FeatureTaps(model, dict(conv='0'), 'model.teacher_taps')
    x = torch.randn(2, 3, 4, 4)
    with taps.recording(), pytest.raises(RuntimeError,
                                         match='this model trains'):
        model(x)
        taps.replace('conv', [x])
    model.eval().requires_grad_(False)
    with taps.recording():
        model(x)
        model(2 * x)
        calls = taps.outputs('conv')
        assert len(calls) == 2
        assert torch.equal(calls[1], model[0](2 * x))
        kept = [torch.ones(2, 2, 4, 4)]
        taps.replace('conv', kept)
        assert torch.equal(taps['conv'], kept[0])
        with pytest.raises(KeyError, match="no tap named 'other'"):
            taps.replace('other', kept)
    with pytest.raises(RuntimeError, match='only replace a record while'):
        taps.replace('conv', kept)
