"""SegDiscriminator: the official SKD critic (4 spectral-norm 4×4 stride-2
convs with LeakyReLU(0.1), self-attention after the 256- and 512-channel
layers, a 4×4 conv to one channel, mean per sample) and SelfAttention."""
import pytest
import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from mmkd.models.discriminators.seg_discriminator import (SegDiscriminator,
                                                          SelfAttention)
from mmkd.registry import MODELS
from mmkd.utils.config_checks import ConfigValueError


def convs(disc: SegDiscriminator):
    return [m for m in disc.modules() if isinstance(m, nn.Conv2d)]


def test_official_structure():
    disc = SegDiscriminator(19 + 3)
    strided = [m[0] for m in disc.layers if isinstance(m, nn.Sequential)]
    assert [c.out_channels for c in strided] == [64, 128, 256, 512]
    assert strided[0].in_channels == 22
    for conv in strided:
        assert conv.kernel_size == (4, 4) and conv.stride == (2, 2)
        assert conv.padding == (1, 1)
        assert parametrize.is_parametrized(conv, 'weight')
    acts = [m[1] for m in disc.layers if isinstance(m, nn.Sequential)]
    assert all(
        isinstance(a, nn.LeakyReLU) and a.negative_slope == 0.1 for a in acts)
    # attn1 after the 256-channel layer, attn2 after the 512-channel layer.
    kinds = [type(m).__name__ for m in disc.layers]
    assert kinds == [
        'Sequential', 'Sequential', 'Sequential', 'SelfAttention',
        'Sequential', 'SelfAttention'
    ]
    assert disc.layers[3].value_conv.in_channels == 256
    assert disc.layers[5].value_conv.in_channels == 512
    # The last conv: 4×4, stride 1, one channel, no spectral norm (official).
    assert disc.last.out_channels == 1 and disc.last.kernel_size == (4, 4)
    assert disc.last.stride == (1, 1)
    assert not parametrize.is_parametrized(disc.last, 'weight')


@pytest.mark.parametrize('size, score',
                         [((65, 65), (1, 1)), ((64, 64), (1, 1)),
                          ((64, 128), (1, 5)), ((96, 96), (3, 3))])
def test_output_is_one_score_per_sample(size, score):
    disc = SegDiscriminator(5)
    assert disc.score_map_size(*size) == score
    out = disc(torch.randn(2, 5, *size))
    assert out.shape == (2, ) and torch.isfinite(out).all()


def test_score_is_the_mean_of_the_score_map():
    torch.manual_seed(0)
    disc = SegDiscriminator(5).eval()
    x = torch.randn(2, 5, 96, 96)
    score_map = disc.last(disc.layers(x))
    assert score_map.shape == (2, 1, 3, 3)
    torch.testing.assert_close(disc(x), score_map.mean(dim=(1, 2, 3)))


def test_minimum_input_size():
    disc = SegDiscriminator(5)
    # floor(s / 2) four times, then a 4×4 conv: 4 · 2^4 = 64.
    assert disc.min_input_size == 64
    assert disc.score_map_size(63, 64) == (0, 1)
    small = SegDiscriminator(
        5, conv_channels=(8, 16), attn_after=(0, 1), last_kernel_size=2)
    assert small.min_input_size == 8
    assert small(torch.randn(3, 5, 8, 8)).shape == (3, )


SMALL = dict(conv_channels=(8, 16), attn_after=(0, 1), last_kernel_size=2)


@pytest.mark.parametrize('kwargs, shape, message', [
    ({}, (1, 5, 63, 64), '63×64 is too small.*at least 64×64'),
    (SMALL, (3, 5, 7, 8), '7×8 is too small.*at least 8×8'),
    ({}, (5, 64, 64), r'\(N, 5, H, W\) inputs.*found shape \(5, 64, 64\)'),
])
def test_inputs_of_another_shape_are_explained(kwargs, shape, message):
    """Inputs no config sets: the message names the shape needed."""
    with pytest.raises(ValueError, match=message):
        SegDiscriminator(5, **kwargs)(torch.randn(*shape))


def test_channel_mismatch_is_explained():
    with pytest.raises(ConfigValueError) as e:
        SegDiscriminator(22)(torch.randn(1, 19, 64, 64))
    assert (e.value.key, e.value.owner) == ('in_channels', 'SegDiscriminator')
    assert e.value.expected == ('19, the channels of the input (shape (1, 19, '
                                '64, 64))')
    assert e.value.found == '22'
    assert 'num_classes + 3' in e.value.hint


def test_bad_arguments_are_explained():
    with pytest.raises(ConfigValueError) as e:
        SegDiscriminator(5, attn_after=(2, 4))
    assert e.value.key == 'attn_after'
    assert ('layer indices in 0..3 (conv_channels=(64, '
            '128, 256, 512))') in e.value.expected
    assert e.value.found == '(2, 4) (tuple)'
    with pytest.raises(ConfigValueError) as e:
        SegDiscriminator(5, attn_after=(2.0, ))
    assert e.value.key == 'attn_after'
    assert 'layer indices in 0..3 (conv_channels=(64, 128,' in e.value.expected
    assert e.value.found == '(2.0,) (tuple)'
    with pytest.raises(ConfigValueError) as e:
        SegDiscriminator(5, last_kernel_size=0)
    assert e.value.key == 'last_kernel_size'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == '0'
    with pytest.raises(ConfigValueError) as e:
        SegDiscriminator(5, conv_channels=())
    assert e.value.key == 'conv_channels'
    assert e.value.expected == 'a non-empty list of ints >= 1'
    assert e.value.found == '() (tuple)'
    with pytest.raises(ConfigValueError) as e:
        SegDiscriminator(5, conv_channels=(8, 0))
    assert e.value.key == 'conv_channels[1]'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == '0'
    with pytest.raises(ConfigValueError) as e:
        SegDiscriminator(0)
    assert e.value.key == 'in_channels'
    assert e.value.expected == 'an int >= 1'
    assert e.value.found == '0'
    with pytest.raises(ConfigValueError) as e:
        SegDiscriminator(5, negative_slope='0.1')
    assert e.value.key == 'negative_slope'
    assert e.value.expected == 'a finite number >= 0'
    assert e.value.found == "'0.1' (str)"


def test_spectral_norm_bounds_the_weight_matrices():
    # In training mode every forward runs one power iteration; after a few,
    # each strided conv's weight (as an out × in·k·k matrix) has σ_max ≈ 1.
    torch.manual_seed(0)
    disc = SegDiscriminator(
        3, conv_channels=(8, 16), attn_after=(1, ), last_kernel_size=2)
    x = torch.randn(1, 3, 8, 8)
    for _ in range(30):
        disc(x)
    for conv in convs(disc):
        if parametrize.is_parametrized(conv, 'weight'):
            sigma = torch.linalg.matrix_norm(
                conv.weight.detach().flatten(1), ord=2)
            assert sigma.item() == pytest.approx(1.0, abs=1e-2)


def test_self_attention_starts_as_identity():
    torch.manual_seed(0)
    attn = SelfAttention(16)
    assert attn.gamma.item() == 0.0 and attn.gamma.requires_grad
    assert attn.query_conv.out_channels == 2  # 16 // 8
    x = torch.randn(2, 16, 3, 5)
    torch.testing.assert_close(attn(x), x)
    weights = attn.attention(x)
    assert weights.shape == (2, 15, 15)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 15))


def test_self_attention_mixes_values_by_attention():
    torch.manual_seed(0)
    attn = SelfAttention(8)
    with torch.no_grad():
        attn.gamma.fill_(0.5)
    x = torch.randn(1, 8, 2, 3)
    value = attn.value_conv(x).flatten(2)  # (1, 8, 6)
    expected = 0.5 * torch.einsum('ncj,nij->nci', value,
                                  attn.attention(x)).view_as(x) + x
    torch.testing.assert_close(attn(x), expected)
    # Few channels keep at least one query/key channel.
    assert SelfAttention(4).query_conv.out_channels == 1


def test_gradients_flow_to_input_and_parameters():
    torch.manual_seed(0)
    disc = SegDiscriminator(
        5, conv_channels=(8, 16), attn_after=(0, 1), last_kernel_size=2)
    x = torch.randn(2, 5, 16, 16, requires_grad=True)
    disc(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in disc.parameters())


def test_registered():
    disc = MODELS.build(dict(type='SegDiscriminator', in_channels=22))
    assert isinstance(disc, SegDiscriminator) and disc.min_input_size == 64
