"""The holistic-distillation discriminator of SKD (Liu et al., CVPR 2019,
Sec. 3.1): a SAGAN-style critic that scores whole segmentation maps."""
from numbers import Integral
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torch.nn.utils.parametrizations import spectral_norm

from mmkd.registry import MODELS
from mmkd.utils.config_checks import (ConfigValueError, check_number,
                                      check_positive_int, describe)


class SelfAttention(nn.Module):
    """SAGAN self-attention block (Zhang et al., 2019), as the official
    ``Self_Attn`` of irfanICMLL/structure_knowledge_distillation
    (``networks/sagan_models.py``).

    For ``x`` of ``(N, C, H, W)`` with ``L = H·W`` locations:

        q = W_q x, k = W_k x  (1×1 convs to C // 8 channels)
        v = W_v x             (1×1 conv to C channels)
        attn = softmax_j(q_iᵀ k_j)              (N, L, L)
        out_i = gamma · sum_j attn_ij v_j + x_i

    ``gamma`` is a learnable scalar initialised to 0, so the block starts as
    the identity.

    Memory: the attention matrix is ``N·L²`` floats. In the discriminator the
    blocks act at 1/8 and 1/16 of the input size, e.g. 64 and 16 locations
    for a 64×64 score map.

    Args:
        in_channels (int): ``C``.
        reduction (int): Channel reduction of the query and key (official:
            8; at least 1 channel is kept). Defaults to 8.
    """

    def __init__(self, in_channels: int, reduction: int = 8) -> None:
        super().__init__()
        qk_channels = max(in_channels // reduction, 1)
        self.query_conv = nn.Conv2d(in_channels, qk_channels, 1)
        self.key_conv = nn.Conv2d(in_channels, qk_channels, 1)
        self.value_conv = nn.Conv2d(in_channels, in_channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x: Tensor) -> Tensor:
        """The attention map.

        Args:
            x (Tensor): ``(N, C, H, W)``.

        Returns:
            Tensor: ``(N, L, L)``, ``L = H·W``; each row sums to 1.
        """
        query = self.query_conv(x).flatten(2).transpose(1, 2)  # (N, L, C')
        key = self.key_conv(x).flatten(2)  # (N, C', L)
        return torch.softmax(torch.bmm(query, key), dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the block.

        Args:
            x (Tensor): ``(N, C, H, W)``.

        Returns:
            Tensor: ``(N, C, H, W)``, ``gamma · attention output + x``.
        """
        value = self.value_conv(x).flatten(2)  # (N, C, L)
        out = torch.bmm(value, self.attention(x).transpose(1, 2))
        return self.gamma * out.view_as(x) + x


@MODELS.register_module()
class SegDiscriminator(nn.Module):
    """Fully convolutional critic for holistic distillation (WGAN-GP).

    The layer structure follows the official ``Discriminator`` of
    irfanICMLL/structure_knowledge_distillation (``networks/sagan_models.py``,
    built there with ``image_size=65``):

        l1..l4: spectral-norm Conv2d(4×4, stride 2, padding 1) + LeakyReLU(0.1)
                with 64, 128, 256, 512 output channels
        attn1:  SelfAttention(256) after l3
        attn2:  SelfAttention(512) after l4
        last:   Conv2d(512 -> 1, 4×4, stride 1, no padding, no spectral norm)
        score:  mean of the last map per sample -> (N,)

    Summaries of the method often describe "five 4×4 stride-2 spectral-norm
    convolutions". In the official code the fifth is a plain 4×4 convolution
    with stride 1; this class follows the code.

    The official discriminator also normalises its input first (BatchNorm2d
    on the logits on the master branch). Here the input is used as given,
    and the holistic loss prepares it (``HolisticLoss.build_input``).

    Input size: every stride-2 layer maps a side ``s`` to ``floor(s / 2)``
    (kernel 4, padding 1), and the last layer needs ``last_kernel_size``
    locations. The input must therefore be at least
    ``last_kernel_size · 2^len(conv_channels)`` on each side: 64 with the
    defaults (a 512×512 crop gives 64×64 logits at 1/8, the official 65×65
    gives a 1×1 score). A smaller input raises a ``ValueError`` that gives
    this minimum. For small maps (toy data), use fewer layers or a smaller
    ``last_kernel_size`` (e.g. ``conv_channels=(64, 128)`` with
    ``attn_after=(0, 1)`` and ``last_kernel_size=2`` accept 8×8), or resize
    the maps before scoring them.

    Args:
        in_channels (int): Input channels: the number of classes, plus 3 for
            an image-conditioned input.
        conv_channels (Sequence[int]): Output channels of the stride-2 layers.
            Defaults to ``(64, 128, 256, 512)``.
        attn_after (Sequence[int]): Indices of the stride-2 layers followed by
            a self-attention block. Defaults to ``(2, 3)``.
        last_kernel_size (int): Kernel of the last (1-channel) convolution.
            Defaults to 4.
        negative_slope (float): LeakyReLU slope. Defaults to 0.1.
    """

    def __init__(self,
                 in_channels: int,
                 conv_channels: Sequence[int] = (64, 128, 256, 512),
                 attn_after: Sequence[int] = (2, 3),
                 last_kernel_size: int = 4,
                 negative_slope: float = 0.1) -> None:
        super().__init__()
        owner = 'SegDiscriminator'
        in_channels = check_positive_int(
            in_channels, 'in_channels', owner=owner,
            hint='Give the classes, plus 3 for an image-conditioned input.')
        if not (isinstance(conv_channels, (list, tuple)) and conv_channels):
            raise ConfigValueError(
                'conv_channels', 'a non-empty list of ints >= 1',
                describe(conv_channels),
                'Give the channels of the stride-2 layers, e.g. (64, 128, '
                '256, 512).', owner=owner)
        conv_channels = tuple(
            check_positive_int(c, f'conv_channels[{i}]', owner=owner)
            for i, c in enumerate(conv_channels))
        if not (isinstance(attn_after, (list, tuple)) and all(
                isinstance(i, Integral) and not isinstance(i, bool)
                and 0 <= i < len(conv_channels) for i in attn_after)):
            raise ConfigValueError(
                'attn_after', 'layer indices in 0..'
                f'{len(conv_channels) - 1} (conv_channels={conv_channels})',
                describe(attn_after), 'Give the stride-2 layers followed by '
                'self-attention, e.g. (2, 3).', owner=owner)
        last_kernel_size = check_positive_int(
            last_kernel_size, 'last_kernel_size', owner=owner,
            hint='It is the kernel of the last convolution (official: 4).')
        negative_slope = check_number(
            negative_slope, 'negative_slope', low=0, owner=owner,
            hint='It is the LeakyReLU slope (official: 0.1).')
        self.in_channels = in_channels
        self.conv_channels = conv_channels
        self.attn_after = tuple(attn_after)
        self.last_kernel_size = last_kernel_size

        layers: List[nn.Module] = []
        prev = in_channels
        for i, channels in enumerate(conv_channels):
            layers.append(
                nn.Sequential(
                    spectral_norm(nn.Conv2d(prev, channels, 4, 2, 1)),
                    nn.LeakyReLU(negative_slope)))
            if i in self.attn_after:
                layers.append(SelfAttention(channels))
            prev = channels
        self.layers = nn.Sequential(*layers)
        self.last = nn.Conv2d(prev, 1, last_kernel_size)

    @property
    def min_input_size(self) -> int:
        """The smallest input side giving a non-empty score map."""
        return self.last_kernel_size * 2**len(self.conv_channels)

    def score_map_size(self, height: int, width: int) -> Tuple[int, int]:
        """The size of the last (1-channel) map for an ``H×W`` input.

        Args:
            height (int): Input height.
            width (int): Input width.

        Returns:
            tuple[int, int]: ``(H_out, W_out)``; a side < 1 means the input is
            too small.
        """
        for _ in self.conv_channels:
            height, width = height // 2, width // 2
        k = self.last_kernel_size
        return height - k + 1, width - k + 1

    def forward(self, x: Tensor) -> Tensor:
        """Score each sample.

        Args:
            x (Tensor): ``(N, in_channels, H, W)``, with ``H`` and ``W`` at
                least ``min_input_size``.

        Returns:
            Tensor: ``(N,)`` scores, the mean of each sample's score map
            (higher = judged more teacher-like).
        """
        if x.dim() != 4:
            raise ValueError(
                f'SegDiscriminator expects (N, {self.in_channels}, H, W) '
                f'inputs (in_channels={self.in_channels}), found shape '
                f'{tuple(x.shape)}.')
        if x.shape[1] != self.in_channels:
            raise ConfigValueError(
                'in_channels', f'{x.shape[1]}, the channels of the input '
                f'(shape {tuple(x.shape)})', repr(self.in_channels),
                'With an image-conditioned holistic loss the input has '
                'num_classes + 3 channels.', owner='SegDiscriminator')
        out_h, out_w = self.score_map_size(*x.shape[-2:])
        if out_h < 1 or out_w < 1:
            raise ValueError(
                f'SegDiscriminator input of {x.shape[-2]}×{x.shape[-1]} is '
                f'too small: {len(self.conv_channels)} stride-2 layers and a '
                f'{self.last_kernel_size}×{self.last_kernel_size} last '
                f'convolution need at least {self.min_input_size}×'
                f'{self.min_input_size}. Use fewer conv_channels, a smaller '
                'last_kernel_size, or resize the maps.')
        return self.last(self.layers(x)).mean(dim=(1, 2, 3))
