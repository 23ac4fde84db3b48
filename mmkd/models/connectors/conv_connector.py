"""Learnable adaptation layers that map a student tap to the teacher's."""
from typing import Optional, Union

import torch.nn as nn
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.taps import MultiLevel, as_levels
from mmkd.utils.config_checks import (ConfigValueError, check_number,
                                      check_optional, check_positive_int,
                                      describe)


@MODELS.register_module()
class ConvConnector(nn.Module):
    """Convolution (+ ReLU) mapping student channels to the teacher's.

    The FGFI adaptation layer by default (official code: 3×3 conv, padding 1,
    ReLU, weights ~ N(0, 1e-4), zero bias). A connector that only maps the
    student's channels to the teacher's (CWD, PKD, a hint on features) is
    ``kernel_size=1, act=False``: a 1×1 projection without activation, the
    one mmkd's errors and README recommend. Spatial size is kept
    (``padding = kernel_size // 2``).

    Applied to a multi-level tap (a tuple/list of maps, e.g. an FPN neck), the
    same layer is applied to every level, unless ``num_levels`` is given, in
    which case each level gets its own layer.

    Args:
        in_channels (int): Student channels.
        out_channels (int): Teacher channels.
        kernel_size (int): 3 (official) or 1. Defaults to 3.
        act (bool): Append a ReLU. Defaults to True.
        init_std (float | None): Std of the normal weight init; ``None``
            keeps PyTorch's default init. Defaults to 1e-4.
        num_levels (int | None): Separate layers per level of a multi-level
            tap. Defaults to None (one layer, or one shared by all levels).
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 act: bool = True,
                 init_std: Optional[float] = 1e-4,
                 num_levels: Optional[int] = None) -> None:
        super().__init__()
        in_channels = check_positive_int(
            in_channels, 'in_channels', owner='ConvConnector',
            hint="Give the channels of the student tap it adapts.")
        out_channels = check_positive_int(
            out_channels, 'out_channels', owner='ConvConnector',
            hint="Give the channels of the teacher tap.")
        if check_positive_int(kernel_size, 'kernel_size',
                              owner='ConvConnector') % 2 != 1:
            raise ConfigValueError(
                'kernel_size', 'an odd int (the spatial size is kept)',
                describe(kernel_size), 'Use 3 (official) or 1.',
                owner='ConvConnector')
        check_optional(check_number, init_std, 'init_std', low=0,
                       low_open=True, owner='ConvConnector',
                       hint="Give the weights' std (1e-4 official), or None "
                       "for PyTorch's default init.")
        self.num_levels = check_optional(
            check_positive_int, num_levels, 'num_levels',
            owner='ConvConnector',
            hint='Give the levels of the tap for one layer per level, or '
            'None for one layer shared by all levels.')
        self.in_channels = in_channels
        self.out_channels = out_channels

        def make() -> nn.Module:
            conv = nn.Conv2d(
                in_channels, out_channels, kernel_size,
                padding=kernel_size // 2)
            if init_std is not None:
                nn.init.normal_(conv.weight, std=init_std)
                nn.init.zeros_(conv.bias)
            return nn.Sequential(conv, nn.ReLU()) if act else conv

        if num_levels is None:
            self.layers = nn.ModuleList([make()])
        else:
            self.layers = nn.ModuleList([make() for _ in range(num_levels)])

    def forward(self, x: MultiLevel) -> Union[Tensor, tuple]:
        """Adapt one map ``(N, C_s, H, W) -> (N, C_t, H, W)`` or a sequence
        of them (one per level)."""
        if isinstance(x, Tensor):
            if self.num_levels is not None:
                raise ConfigValueError(
                    'num_levels', 'None: the tap is one map, not a '
                    'multi-level tap (tuple of maps)', repr(self.num_levels),
                    'Leave num_levels out for a single map.',
                    owner='ConvConnector')
            return self.layers[0](x)
        levels = as_levels(x, 'ConvConnector input')
        if self.num_levels is not None and len(levels) != self.num_levels:
            raise ConfigValueError(
                'num_levels', f'{len(levels)}, the levels of the tap (or '
                'None for one layer shared by all levels)',
                repr(self.num_levels), owner='ConvConnector')
        layers = (self.layers if self.num_levels is not None else
                  [self.layers[0]] * len(levels))
        return tuple(layer(f) for layer, f in zip(layers, levels))

    def extra_repr(self) -> str:
        return f'{self.in_channels} -> {self.out_channels}'
