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

from mmkd.taps import as_levels


def squared_difference(student: Tensor, teacher: Tensor) -> Tensor:
    """``Σ_c (s − t)²`` per location, ``(N, H, W)`` in fp32, of two
    ``(N, C, H, W)`` maps of the same shape."""
    return (student.detach().float() - teacher.detach().float()).pow(2).sum(1)


@torch.no_grad()
def region_stats(loss: nn.Module, args: tuple,
                 kwargs: Dict[str, Any]) -> Dict[str, Dict[str, List[float]]]:
    """The regions of one call of a region loss, measured.

    Args:
        loss (nn.Module): A loss with ``diagnostic_regions``.
        args (tuple): The student map(s) and the teacher map(s) its
            ``forward`` received.
        kwargs (dict): Its extra inputs.

    Returns:
        dict: Region name -> ``dict(cover=[...], diff=[...])``: per level,
        then over all levels, the share of the locations (batch × H × W)
        inside the region and the share of ``Σ_c (s − t)²`` inside it. The
        difference is measured only where the student map (after its
        connector) has the teacher's shape; ``diff`` is empty otherwise
        (e.g. FGD aligns channels inside the loss).
    """
    students = as_levels(args[0], 'student maps')
    teachers = as_levels(args[1], 'teacher maps')
    regions = loss.diagnostic_regions(*args, **kwargs)
    comparable = all(s.shape == t.shape for s, t in zip(students, teachers))
    result = {}
    for name, masks in regions.items():
        inside, total, d_inside, d_total = [], [], [], []
        for level, mask in enumerate(as_levels(masks, f'region {name}')):
            mask = mask.to(students[level].device) != 0
            inside.append(mask.sum().item())
            total.append(mask.numel())
            if comparable:
                diff = squared_difference(students[level], teachers[level])
                d_inside.append((diff * mask).sum().item())
                d_total.append(diff.sum().item())
        result[name] = dict(cover=_shares(inside, total),
                            diff=_shares(d_inside, d_total))
    return result


def _shares(part: List[float], whole: List[float]) -> List[float]:
    """``part / whole`` per level, then of the sums (0 where the whole is
    0); empty for empty inputs."""
    if not part:
        return []
    pairs: List[Tuple[float, float]] = list(zip(part, whole))
    pairs.append((sum(part), sum(whole)))
    return [p / w if w > 0 else 0.0 for p, w in pairs]
