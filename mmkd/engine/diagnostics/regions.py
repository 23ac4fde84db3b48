"""Where a region loss looks: the share of the locations its region covers
and the share of the teacher-student difference inside it.

A loss that restricts itself to a region of the maps says so with a method
``diagnostic_regions(student, teacher, **inputs)`` taking the arguments of
its ``forward`` and returning region name -> one ``(N, H_l, W_l)`` mask per
level (bool, or weights whose nonzero locations are the region), e.g.
``mmkd.ImitationLoss`` (``'mask'``: FGFI's imitation region, I or G) and
``mmkd.FGDLoss`` (``'foreground'``)."""
from typing import Any, Dict, List, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from mmkd.taps import MultiLevel, as_levels


def squared_difference(student: Tensor, teacher: Tensor) -> Tensor:
    """``Σ_c (s − t)²`` per location, ``(N, H, W)`` in fp32, of two
    ``(N, C, H, W)`` maps of the same shape."""
    return (student.detach().float() - teacher.detach().float()).pow(2).sum(1)


@torch.no_grad()
def region_stats(loss: nn.Module, args: tuple,
                 kwargs: Dict[str, Any]) -> Dict[str, Dict[str, List[float]]]:
    """The regions of one call of a region loss, measured
    (:func:`mask_shares` of each region ``loss.diagnostic_regions`` gives).

    Args:
        loss (nn.Module): A loss with ``diagnostic_regions``.
        args (tuple): The student map(s) and the teacher map(s) its
            ``forward`` received.
        kwargs (dict): Its extra inputs.

    Returns:
        dict: Region name -> :func:`mask_shares`.
    """
    regions = loss.diagnostic_regions(*args, **kwargs)
    return {name: mask_shares(args[0], args[1], masks)
            for name, masks in regions.items()}


@torch.no_grad()
def mask_shares(student: MultiLevel, teacher: MultiLevel,
                masks: MultiLevel) -> Dict[str, List[float]]:
    """Where a region lies on a pair of maps.

    Args:
        student (Tensor | Sequence[Tensor]): ``(N, C, H_l, W_l)`` per level
            (the student's map after its connector).
        teacher (Tensor | Sequence[Tensor]): The teacher's, same levels.
        masks (Tensor | Sequence[Tensor]): ``(N, H_l, W_l)`` per level;
            nonzero locations are the region.

    Returns:
        dict: ``cover`` and ``diff``: per level, then over all levels, the
        share of the locations (batch × H × W) inside the region and the
        share of ``Σ_c (s − t)²`` inside it. The difference is measured only
        where the student map has the teacher's shape; ``diff`` is empty
        otherwise (e.g. FGD aligns channels inside the loss).
    """
    students = as_levels(student, 'student maps')
    teachers = as_levels(teacher, 'teacher maps')
    comparable = all(s.shape == t.shape for s, t in zip(students, teachers))
    inside, total, d_inside, d_total = [], [], [], []
    for level, mask in enumerate(as_levels(masks, 'region masks')):
        mask = mask.to(students[level].device) != 0
        inside.append(mask.sum().item())
        total.append(mask.numel())
        if comparable:
            diff = squared_difference(students[level], teachers[level])
            d_inside.append((diff * mask).sum().item())
            d_total.append(diff.sum().item())
    return dict(cover=_shares(inside, total), diff=_shares(d_inside, d_total))


def _shares(part: List[float], whole: List[float]) -> List[float]:
    """``part / whole`` per level, then of the sums (0 where the whole is
    0); empty for empty inputs."""
    if not part:
        return []
    pairs: List[Tuple[float, float]] = list(zip(part, whole))
    pairs.append((sum(part), sum(whole)))
    return [p / w if w > 0 else 0.0 for p, w in pairs]
