"""FitNets' hint regressor: a convolution without padding whose kernel maps a
larger student map onto the teacher's smaller one."""
from numbers import Integral
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch.nn as nn
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.taps import MultiLevel, as_levels
from mmkd.utils.config_checks import (ConfigValueError, check_number,
                                      check_optional, check_positive_int,
                                      describe)

OWNER = 'HintRegressor'

Size = Tuple[int, int]
SizeArg = Union[int, Sequence[int], Sequence[Sequence[int]]]


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _parse_sizes(value: SizeArg, key: str,
                 allow_int: bool) -> Tuple[List[Size], bool]:
    """Read ``(H, W)``, a list of ``(H, W)`` (one per level) or, where
    ``allow_int``, one int ``k`` meaning ``(k, k)``.

    Returns:
        tuple: the sizes (one per level) and whether a per-level list was
        given.
    """

    def pair(v: Any) -> Optional[Size]:
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(
                _is_int(x) and x > 0 for x in v):
            return int(v[0]), int(v[1])
        return None

    if allow_int and _is_int(value) and value > 0:
        return [(int(value), int(value))], False
    if pair(value) is not None:
        return [pair(value)], False
    if isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (list, tuple)) for v in value):
        levels = [pair(v) for v in value]
        if all(level is not None for level in levels):
            return levels, True
    raise ConfigValueError(
        key, ('an int, an (H, W) pair or a list of (H, W) pairs (one per '
              'level) of positive ints' if allow_int else
              'an (H, W) pair or a list of (H, W) pairs (one per level) of '
              'positive ints'), describe(value), owner=OWNER)


def _hw(size: Size) -> str:
    return f'{size[0]}x{size[1]}'


@MODELS.register_module()
class HintRegressor(nn.Module):
    """The hint regressor ``W_r`` of FitNets (Romero et al., ICLR 2015), as
    FGFI's full-feature variant F describes it: one convolution, stride 1,
    **no padding**, mapping the student's guided-layer map onto the teacher's
    hint-layer map when the two differ in size.

    Without padding, a ``k_h x k_w`` kernel turns ``H_s x W_s`` into
    ``(H_s - k_h + 1) x (W_s - k_w + 1)``; so for a student map of
    ``H_s x W_s`` and a teacher map of ``H_t x W_t`` (``H_s >= H_t``,
    ``W_s >= W_t``)::

        kernel = (H_s - H_t + 1, W_s - W_t + 1)
        (N, C_s, H_s, W_s) -> (N, C_t, H_t, W_t)

    Equal sizes give a 1x1 kernel (a channel projection). The kernel grows
    with the size *difference*: a student tapped one stride earlier than the
    teacher (``H_s = 2 H_t``) needs a kernel of about half its map, i.e.
    ``C_s * C_t * (H_t + 1) * (W_t + 1)`` weights, and each output sums
    ``C_s * k_h * k_w`` inputs (a very large fan-in).

    A fixed kernel serves one pair of sizes. Built from ``student_size`` and
    ``teacher_size``, the regressor refuses any other student map size (a
    detector fed images of different sizes, or a batch padded to its largest
    image, gives other sizes: fix the input size in the data pipeline).
    Built from ``kernel_size`` alone it cannot know the intended sizes: any
    map at least as large as the kernel passes, and a wrong output size only
    shows in the loss. Prefer the sizes.

    A multi-level tap (a tuple of maps, e.g. the outputs of an FPN neck) has
    levels of different sizes, which one kernel cannot serve: give per-level
    sizes (lists, one ``(H, W)`` per level); each level then gets its own
    convolution.

    Args:
        in_channels (int): Student channels ``C_s``.
        out_channels (int): Teacher channels ``C_t``.
        kernel_size (int | tuple[int, int] | list[tuple[int, int]], optional):
            The kernel, ``(k_h, k_w)`` (or a list of them, one per level).
            Give either this or both map sizes.
        student_size (tuple[int, int] | list[tuple[int, int]], optional):
            ``(H_s, W_s)`` of the student map (or one per level).
        teacher_size (tuple[int, int] | list[tuple[int, int]], optional):
            ``(H_t, W_t)`` of the teacher map (or one per level).
        act (bool): Append a ReLU (FitNets: the regressor's output should
            have the hint layer's non-linearity, e.g. ReLU for a backbone
            stage, none for an FPN output). Defaults to False.
        init_std (float, optional): Std of a normal weight init with zero
            bias; ``None`` keeps PyTorch's default conv init. Defaults to
            None.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: Optional[SizeArg] = None,
                 student_size: Optional[SizeArg] = None,
                 teacher_size: Optional[SizeArg] = None,
                 act: bool = False,
                 init_std: Optional[float] = None) -> None:
        super().__init__()
        self.in_channels = check_positive_int(
            in_channels, 'in_channels', owner=OWNER,
            hint='Give the channels of the student tap it regresses.')
        self.out_channels = check_positive_int(
            out_channels, 'out_channels', owner=OWNER,
            hint='Give the channels of the teacher tap.')
        check_optional(check_number, init_std, 'init_std', low=0,
                       low_open=True, owner=OWNER,
                       hint="Or None for PyTorch's default init.")
        if kernel_size is not None and (student_size is not None
                                        or teacher_size is not None):
            raise ConfigValueError(
                'kernel_size', 'None when student_size and teacher_size are '
                'given (they determine the kernel)', describe(kernel_size),
                'Give either kernel_size or the two map sizes, not both.',
                owner=OWNER)
        if kernel_size is None:
            for key, value in (('student_size', student_size),
                               ('teacher_size', teacher_size)):
                if value is None:
                    raise ConfigValueError(
                        key, '(H, W) of the map, with the other map size (the '
                        'kernel is (H_s - H_t + 1, W_s - W_t + 1)), or an '
                        'explicit kernel_size instead of both sizes',
                        describe(value), owner=OWNER)

        if kernel_size is not None:
            kernels, self.per_level = _parse_sizes(kernel_size, 'kernel_size',
                                                   allow_int=True)
            # unknown: any map at least as large as the kernel is accepted
            self.student_sizes: Optional[List[Size]] = None
            self.teacher_sizes: Optional[List[Size]] = None
        else:
            students, s_levels = _parse_sizes(student_size, 'student_size',
                                              allow_int=False)
            teachers, t_levels = _parse_sizes(teacher_size, 'teacher_size',
                                              allow_int=False)
            if s_levels != t_levels or len(students) != len(teachers):
                raise ConfigValueError(
                    'teacher_size',
                    (f'a list of {len(students)} (H, W) pairs, one per level '
                     'of student_size' if s_levels else
                     'one (H, W) pair, as student_size is'),
                    describe(teacher_size), owner=OWNER)
            for level, (s, t) in enumerate(zip(students, teachers)):
                if s[0] < t[0] or s[1] < t[1]:
                    where = f' at level {level}' if s_levels else ''
                    raise ConfigValueError(
                        'student_size',
                        f'a map at least as large as the teacher map '
                        f'{_hw(t)}{where} in both dimensions', _hw(s),
                        'A convolution without padding only shrinks a map: '
                        "tap a student layer at least as large as the "
                        "teacher's (an earlier stage), or upsample the "
                        'student first.', owner=OWNER)
            kernels = [(s[0] - t[0] + 1, s[1] - t[1] + 1)
                       for s, t in zip(students, teachers)]
            self.per_level = s_levels
            self.student_sizes, self.teacher_sizes = students, teachers
        self.kernel_sizes = kernels

        self.convs = nn.ModuleList([
            nn.Conv2d(self.in_channels, self.out_channels, k, stride=1,
                      padding=0)
            for k in kernels
        ])
        if init_std is not None:
            for conv in self.convs:
                nn.init.normal_(conv.weight, std=init_std)
                nn.init.zeros_(conv.bias)
        self.act = nn.ReLU() if act else nn.Identity()

    def forward(self, x: MultiLevel) -> Union[Tensor, tuple]:
        """Regress the student tap onto the teacher's map size.

        Args:
            x (Tensor | Sequence[Tensor]): One map ``(N, C_s, H_s, W_s)``,
                or, when built per level, one per level.

        Returns:
            Tensor | tuple[Tensor]: ``(N, C_t, H_t, W_t)``, or a tuple of
            them (one per level).
        """
        if isinstance(x, Tensor):
            if self.per_level:
                raise ConfigValueError(
                    self._size_key, 'one (H, W) pair: the tap is one map of '
                    f'shape {tuple(x.shape)}',
                    f'{len(self.convs)} (H, W) pairs (one per level)',
                    'Tap the multi-level output, or give single (H, W) '
                    'sizes.', owner=OWNER)
            return self.act(self.convs[0](self._check(x, 0)))
        x = as_levels(x, 'HintRegressor input')
        sizes = [_hw(tuple(f.shape[-2:])) for f in x]
        if not self.per_level:
            raise ConfigValueError(
                self._size_key, f'a list of {len(x)} (H, W) pairs, one per '
                f'level of the tap (its maps are {sizes})',
                f'one (H, W) pair (kernel {_hw(self.kernel_sizes[0])})',
                'One fixed kernel cannot serve levels of different sizes. '
                'Give per-level sizes, e.g. student_size=[(H, W), ...] and '
                'teacher_size=[(H, W), ...], or tap a single map.',
                owner=OWNER)
        if len(x) != len(self.convs):
            raise ConfigValueError(
                self._size_key, f'a list of {len(x)} (H, W) pairs, one per '
                f'level of the tap (its maps are {sizes})',
                f'{len(self.convs)} (H, W) pairs', owner=OWNER)
        return tuple(
            self.act(conv(self._check(f, level)))
            for level, (conv, f) in enumerate(zip(self.convs, x)))

    @property
    def _size_key(self) -> str:
        """The argument that set the regressor's map sizes."""
        return 'kernel_size' if self.student_sizes is None else \
            'student_size'

    def _check(self, x: Tensor, level: int) -> Tensor:
        """Refuse a map this level's fixed kernel was not built for."""
        if x.dim() != 4:
            raise ValueError(
                f'{self._describe()} expects (N, C, H, W) maps, found shape '
                f'{tuple(x.shape)}.')
        size = tuple(x.shape[-2:])
        where = f' at level {level}' if self.per_level else ''
        kernel = self.kernel_sizes[level]
        if self.student_sizes is not None:
            expected = self.student_sizes[level]
            if size != expected:
                raise ConfigValueError(
                    'student_size', f'{_hw(size)}{where}, the size of the '
                    f'student map (input shape {tuple(x.shape)})',
                    f'{_hw(expected)} (-> teacher '
                    f'{_hw(self.teacher_sizes[level])}, kernel '
                    f'{_hw(kernel)})',
                    'The fixed kernel maps only the size it was built for. '
                    'Detector inputs of varying size (keep_ratio=True, or a '
                    'batch padded to its largest image) change the map sizes: '
                    'fix the input size in the data pipeline (e.g. Resize '
                    'with keep_ratio=False to a size divisible by the '
                    'largest stride), or build the regressor for the sizes '
                    'you feed.', owner=OWNER)
        elif size[0] < kernel[0] or size[1] < kernel[1]:
            raise ConfigValueError(
                'kernel_size', f'at most the student map {_hw(size)}{where}',
                _hw(kernel),
                f'A map of H_s x W_s gives (H_s - {kernel[0] - 1}) x '
                f'(W_s - {kernel[1] - 1}).', owner=OWNER)
        return x

    def _describe(self) -> str:
        return (f'HintRegressor({self.in_channels} -> {self.out_channels}, '
                f'kernel {", ".join(_hw(k) for k in self.kernel_sizes)})')

    def extra_repr(self) -> str:
        text = f'{self.in_channels} -> {self.out_channels}'
        if self.student_sizes is not None:
            text += ', ' + ', '.join(
                f'{_hw(s)} -> {_hw(t)}'
                for s, t in zip(self.student_sizes, self.teacher_sizes))
        return text
