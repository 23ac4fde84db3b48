"""Where the teacher-student feature difference lies on a detector's FPN
levels: FGFI's premise, measured before any distilled student trains.

FGFI imitates the teacher only near objects (region I) because that is
where the student's feature differs from the teacher's in a way that
matters. The measurement: on a split's scenes, a least-squares 1x1
adaptation (with bias) maps the trained baseline student's FPN output to
the teacher's, per level, over every location inside the images (the best
an adaptation layer can do without imitation); the squared residual
``Σ_c (t - A s)²`` is the difference an imitation term would act on. Per
level it gives the share of the locations region I covers and the share of
the residual inside it; their ratio (the concentration) is 1 when the
difference is spread like the locations, above 1 when it gathers near
objects.
"""
from typing import Dict, List, Sequence

import torch
from torch import Tensor


def least_squares_residual(student: Tensor, teacher: Tensor,
                           valid: Tensor) -> Tensor:
    """The squared residual of the best affine 1x1 map from ``student`` to
    ``teacher`` features, fitted on the ``valid`` locations.

    Args:
        student: ``(N, C_s, H, W)`` student features.
        teacher: ``(N, C_t, H, W)`` teacher features.
        valid: ``(N, H, W)`` bool, the locations the fit uses.

    Returns:
        Tensor: ``(N, H, W)`` residual ``Σ_c (t - A s - b)²`` (0 outside
        ``valid``).
    """
    n, cs, h, w = student.shape
    s = student.permute(0, 2, 3, 1).reshape(-1, cs).double()
    t = teacher.permute(0, 2, 3, 1).reshape(-1, teacher.shape[1]).double()
    keep = valid.reshape(-1)
    design = torch.cat([s, torch.ones_like(s[:, :1])], dim=1)
    solution = torch.linalg.lstsq(design[keep], t[keep]).solution
    residual = ((t - design @ solution)**2).sum(dim=1)
    residual[~keep] = 0
    return residual.view(n, h, w).float()


def region_shares(region: Sequence[Tensor], valid: Sequence[Tensor],
                  difference: Sequence[Tensor]) -> List[Dict[str, float]]:
    """Per level, the share of the valid locations a region covers and of
    a non-negative ``difference`` inside it.

    Args:
        region: Per level ``(N, H, W)`` bool, the region.
        valid: Per level ``(N, H, W)`` bool, the locations inside the
            images.
        difference: Per level ``(N, H, W)`` non-negative values.

    Returns:
        list[dict]: Per level ``locations`` and ``difference`` (percent)
        and ``concentration`` (their ratio; None where the region is empty).
    """
    rows = []
    for inside, ok, diff in zip(region, valid, difference):
        inside = inside & ok
        locations = 100 * float(inside.sum()) / max(1, int(ok.sum()))
        total = float(diff[ok].sum())
        share = 100 * float(diff[inside].sum()) / total if total else 0.0
        rows.append(dict(locations=locations, difference=share,
                         concentration=share / locations if locations
                         else None))
    return rows
