"""HintRegressor: FitNets' regressor, one convolution without padding whose
kernel (H_s - H_t + 1, W_s - W_t + 1) maps the student map onto the
teacher's size."""
import pytest
import torch
import torch.nn as nn

from mmkd.models.connectors.hint_regressor import HintRegressor
from mmkd.models.losses.feature_mse import FeatureMSELoss
from mmkd.registry import MODELS
from mmkd.utils.config_checks import ConfigValueError


@pytest.mark.parametrize('student_size, teacher_size, kernel', [
    ((5, 5), (5, 5), (1, 1)),  # equal sizes: a 1x1 projection
    ((6, 8), (3, 4), (4, 5)),  # one stride earlier
    ((7, 4), (2, 4), (6, 1)),  # only the height differs
    ((50, 84), (25, 42), (26, 43)),  # P4 -> P5 of a 800x1344 input
])
def test_kernel_formula_and_output_shape(student_size, teacher_size, kernel):
    regressor = HintRegressor(3, 2, student_size=student_size,
                              teacher_size=teacher_size)
    conv = regressor.convs[0]
    assert isinstance(conv, nn.Conv2d)
    assert conv.kernel_size == kernel
    assert conv.weight.shape == (2, 3) + kernel
    assert conv.stride == (1, 1) and conv.padding == (0, 0)
    out = regressor(torch.randn(2, 3, *student_size))
    assert out.shape == (2, 2) + teacher_size


def test_hand_computed_value():
    """1 channel, 3x3 student, 2x2 teacher -> 2x2 kernel; weights
    [[1, 2], [3, 4]], bias 0.5. Top-left output: 1*1 + 2*2 + 3*4 + 4*5 +
    0.5 = 37.5; the window moves one cell per output."""
    regressor = HintRegressor(1, 1, student_size=(3, 3), teacher_size=(2, 2))
    conv = regressor.convs[0]
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1., 2.], [3., 4.]]]]))
        conv.bias.fill_(0.5)
    student = torch.arange(1., 10.).view(1, 1, 3, 3)
    expected = torch.tensor([[[[37.5, 47.5], [67.5, 77.5]]]])
    assert torch.equal(regressor(student), expected)

    with_relu = HintRegressor(1, 1, kernel_size=2, act=True)
    with torch.no_grad():
        with_relu.convs[0].weight.copy_(-conv.weight)
        with_relu.convs[0].bias.fill_(47.)
    # -37 + 47 = 10, -47 + 47 = 0, -67 + 47 < 0, -77 + 47 < 0
    assert torch.equal(with_relu(student),
                       torch.tensor([[[[10., 0.], [0., 0.]]]]))


def test_explicit_kernel_equals_kernel_from_sizes():
    torch.manual_seed(0)
    from_sizes = HintRegressor(2, 3, student_size=(6, 9),
                               teacher_size=(4, 5))
    explicit = HintRegressor(2, 3, kernel_size=(3, 5))
    explicit.load_state_dict(from_sizes.state_dict(), strict=True)
    x = torch.randn(1, 2, 6, 9)
    assert torch.equal(explicit(x), from_sizes(x))
    # a square kernel as one int
    assert HintRegressor(2, 3, kernel_size=3).convs[0].kernel_size == (3, 3)


def test_explicit_kernel_accepts_any_map_at_least_its_size():
    """Without the sizes it cannot tell the intended map: output = map - k
    + 1 (a wrong size then shows in the loss)."""
    regressor = HintRegressor(2, 3, kernel_size=(3, 5))
    assert regressor(torch.randn(1, 2, 10, 5)).shape == (1, 3, 8, 1)
    with pytest.raises(ConfigValueError) as e:
        regressor(torch.randn(1, 2, 2, 5))
    assert (e.value.key, e.value.owner) == ('kernel_size', 'HintRegressor')
    assert e.value.expected == 'at most the student map 2x5'
    assert e.value.found == '3x5'


def test_gradients_reach_the_regressor_and_the_student():
    torch.manual_seed(0)
    student = nn.Conv2d(3, 4, 3, padding=1)  # a student layer, 6x6 maps
    regressor = HintRegressor(4, 5, student_size=(6, 6), teacher_size=(3, 3))
    images = torch.randn(2, 3, 6, 6, requires_grad=True)
    hint = torch.randn(2, 5, 3, 3)  # the teacher's map (recorded, no grad)
    FeatureMSELoss()(regressor(student(images)), hint).backward()
    for module in (student, regressor):
        for p in module.parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0
    # every student location is in some window of the 4x4 kernel
    assert (images.grad.abs().sum(dim=1) > 0).all()


def test_per_level_sizes_give_one_convolution_per_level():
    """An FPN-like tap: levels of different sizes, each with its kernel."""
    regressor = HintRegressor(
        4, 4, student_size=[(16, 24), (8, 12)],
        teacher_size=[[8, 12], [4, 6]])  # lists, as a config may give
    assert [conv.kernel_size for conv in regressor.convs] == [(9, 13),
                                                               (5, 7)]
    out = regressor((torch.randn(2, 4, 16, 24), torch.randn(2, 4, 8, 12)))
    assert isinstance(out, tuple)
    assert [o.shape for o in out] == [(2, 4, 8, 12), (2, 4, 4, 6)]
    # the levels do not share weights
    assert regressor.convs[0].weight.data_ptr() != \
        regressor.convs[1].weight.data_ptr()
    per_level_kernels = HintRegressor(4, 4, kernel_size=[(9, 13), (5, 7)])
    assert len(per_level_kernels.convs) == 2


def test_init_std_and_registry():
    regressor = MODELS.build(dict(
        type='mmkd.HintRegressor', in_channels=8, out_channels=8,
        student_size=[12, 12], teacher_size=[6, 6], init_std=1e-3))
    conv = regressor.convs[0]
    assert torch.count_nonzero(conv.bias) == 0
    assert conv.weight.std().item() == pytest.approx(1e-3, rel=0.1)
    assert '12x12 -> 6x6' in repr(regressor)


# ------------------------------------------------------------------ errors
SIZES = ('(H, W) of the map, with the other map size (the kernel is '
         '(H_s - H_t + 1, W_s - W_t + 1)), or an explicit kernel_size '
         'instead of both sizes')
SIZE_PAIRS = ('an (H, W) pair or a list of (H, W) pairs (one per level) of '
              'positive ints')


@pytest.mark.parametrize('kwargs, key, expected, found', [
    (dict(kernel_size=3, student_size=(4, 4), teacher_size=(2, 2)),
     'kernel_size', 'None when student_size and teacher_size are given '
     '(they determine the kernel)', '3'),
    (dict(kernel_size=3, student_size=(4, 4)), 'kernel_size',
     'None when student_size and teacher_size are given (they determine the '
     'kernel)', '3'),
    (dict(), 'student_size', SIZES, 'None'),
    (dict(student_size=(4, 4)), 'teacher_size', SIZES, 'None'),
    (dict(student_size=(4, 4), teacher_size=(5, 4)), 'student_size',
     'a map at least as large as the teacher map 5x4 in both dimensions',
     '4x4'),
    (dict(student_size=(4, 4), teacher_size=(4, 5)), 'student_size',
     'a map at least as large as the teacher map 4x5 in both dimensions',
     '4x4'),
    (dict(student_size=[(8, 8), (2, 2)], teacher_size=[(4, 4), (3, 3)]),
     'student_size', 'a map at least as large as the teacher map 3x3 at '
     'level 1 in both dimensions', '2x2'),
    (dict(student_size=[(8, 8), (4, 4)], teacher_size=[(4, 4)]),
     'teacher_size', 'a list of 2 (H, W) pairs, one per level of '
     'student_size', '[(4, 4)] (list)'),
    (dict(student_size=(8, 8), teacher_size=[(4, 4)]), 'teacher_size',
     'one (H, W) pair, as student_size is', '[(4, 4)] (list)'),
    (dict(student_size=(4, 4, 4), teacher_size=(2, 2)), 'student_size',
     SIZE_PAIRS, '(4, 4, 4) (tuple)'),
    (dict(student_size=4, teacher_size=2), 'student_size', SIZE_PAIRS, '4'),
    (dict(student_size=(0, 4), teacher_size=(0, 2)), 'student_size',
     SIZE_PAIRS, '(0, 4) (tuple)'),
    (dict(student_size=(True, 4), teacher_size=(1, 2)), 'student_size',
     SIZE_PAIRS, '(True, 4) (tuple)'),
    (dict(kernel_size=(2, 2, 2)), 'kernel_size',
     'an int, an (H, W) pair or a list of (H, W) pairs (one per level) of '
     'positive ints', '(2, 2, 2) (tuple)'),
    (dict(kernel_size=[3, (2, 2)]), 'kernel_size',
     'an int, an (H, W) pair or a list of (H, W) pairs (one per level) of '
     'positive ints', '[3, (2, 2)] (list)'),
    (dict(kernel_size=2, init_std=0.0), 'init_std', 'a finite number > 0',
     '0.0'),
])
def test_bad_arguments_are_clear_errors(kwargs, key, expected, found):
    with pytest.raises(ConfigValueError) as e:
        HintRegressor(2, 2, **kwargs)
    assert (e.value.owner, e.value.key) == ('HintRegressor', key)
    assert e.value.expected == expected
    assert e.value.found == found


def test_channels_are_positive_ints():
    with pytest.raises(ConfigValueError) as e:
        HintRegressor(0, 2, kernel_size=1)
    assert e.value.key == 'in_channels'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == '0'
    with pytest.raises(ConfigValueError) as e:
        HintRegressor(2, 2.0, kernel_size=1)
    assert e.value.key == 'out_channels'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == '2.0'


def test_a_distiller_names_the_config_key_of_a_bad_argument():
    """Built by a distiller, an argument error carries its full key."""
    from mmkd.models.distillers.loss_routes import build_part
    with pytest.raises(ConfigValueError) as e:
        build_part(
            dict(type='mmkd.HintRegressor', in_channels=2, out_channels=2,
                 student_size=(2, 2), teacher_size=(3, 3)),
            'model.connectors.hint')
    assert e.value.key == 'model.connectors.hint.student_size'
    assert 'a map at least as large' in e.value.expected
    assert e.value.found == '2x2'


def test_a_map_of_another_size_names_both_sizes_and_the_kernel():
    regressor = HintRegressor(2, 3, student_size=(8, 12), teacher_size=(4, 6))
    with pytest.raises(ConfigValueError) as e:
        regressor(torch.randn(1, 2, 10, 12))
    assert (e.value.key, e.value.owner) == ('student_size', 'HintRegressor')
    assert e.value.expected == ('10x12, the size of the student map (input '
                                'shape (1, 2, 10, 12))')
    assert e.value.found == '8x12 (-> teacher 4x6, kernel 5x7)'
    assert 'keep_ratio=False' in e.value.hint


def test_a_multi_level_tap_needs_per_level_sizes():
    single = HintRegressor(2, 2, student_size=(8, 8), teacher_size=(4, 4))
    with pytest.raises(ConfigValueError) as e:
        single((torch.randn(1, 2, 8, 8), torch.randn(1, 2, 4, 4)))
    assert (e.value.key, e.value.owner) == ('student_size', 'HintRegressor')
    assert e.value.expected == ("a list of 2 (H, W) pairs, one per level of "
                                "the tap (its maps are ['8x8', '4x4'])")
    assert e.value.found == 'one (H, W) pair (kernel 5x5)'
    per_level = HintRegressor(2, 2, student_size=[(8, 8), (4, 4)],
                              teacher_size=[(4, 4), (2, 2)])
    with pytest.raises(ConfigValueError) as e:
        per_level(torch.randn(1, 2, 8, 8))
    assert e.value.key == 'student_size'
    assert e.value.expected == ('one (H, W) pair: the tap is one map of shape '
                                '(1, 2, 8, 8)')
    assert e.value.found == '2 (H, W) pairs (one per level)'
    with pytest.raises(ConfigValueError) as e:
        per_level([torch.randn(1, 2, 8, 8)] * 3)
    assert e.value.key == 'student_size'
    assert e.value.expected == ("a list of 3 (H, W) pairs, one per level of "
                                "the tap (its maps are ['8x8', '8x8', '8x8'])")
    assert e.value.found == '2 (H, W) pairs'
    with pytest.raises(ConfigValueError) as e:
        per_level((torch.randn(1, 2, 8, 8), torch.randn(1, 2, 5, 4)))
    assert e.value.key == 'student_size'
    assert e.value.expected == ('5x4 at level 1, the size of the student map '
                                '(input shape (1, 2, 5, 4))')
    assert e.value.found == '4x4 (-> teacher 2x2, kernel 3x3)'
    per_level_kernel = HintRegressor(2, 2, kernel_size=[(3, 3), (1, 1)])
    with pytest.raises(ConfigValueError) as e:
        per_level_kernel(torch.randn(1, 2, 8, 8))
    assert e.value.key == 'kernel_size'
