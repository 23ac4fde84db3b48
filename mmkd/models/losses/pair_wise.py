"""Pair-wise (affinity graph) distillation of SKD (Liu et al., CVPR 2019,
Sec. 3.1)."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmkd.registry import MODELS
from mmkd.utils.config_checks import (ConfigValueError, check_choice,
                                      check_number, check_optional,
                                      check_positive_int)
from .levelwise import LevelwiseLoss
from .utils import check_map_pair, fp32_math, resize_to

#: Added to each node's L2 norm before dividing, as in the official code.
NORM_EPS = 1e-8

#: The official node scheme (``CriterionPairWiseforWholeFeatAfterPool``):
#: max pooling, the node side half the map's side; used when neither
#: ``node_size`` nor ``pool_scale`` is given.
OFFICIAL_POOL_SCALE = 0.5

#: Default ``norm_floor``: a node's norm is raised to at least this fraction
#: of the mean node norm of its sample.
NORM_FLOOR = 0.05


@MODELS.register_module()
class PairWiseLoss(LevelwiseLoss):
    """The student's affinity graph of spatial nodes imitates the teacher's.

    Steps:
        1. A teacher feature of another ``H×W`` is resized bilinearly to the
           student's. The channel counts may differ (official: 128 for the
           student, 512 for the teacher), because only affinities between
           nodes are compared.
        2. Nodes: the map is pooled (max or average, ``ceil_mode=True``) with
           kernel = stride =
           - ``node_size`` (β×β patches, the paper; TPAMI: 2×2 average), or
           - ``int(pool_scale·H)`` × ``int(pool_scale·W)`` (the official code,
             ``CriterionPairWiseforWholeFeatAfterPool``, max pooling with
             ``pool_scale=0.5``, i.e. 3×3 nodes on a 65×65 map).
           A kernel is at least 1 and at most the map's side. With a kernel
           of 1 the pooling is skipped and every location is a node. This
           gives ``N' = H'·W'`` nodes ``f_i``.
        3. Each node is divided by its L2 norm, detached, raised to the
           sample's floor, plus 1e-8:
           ``x_i = f_i / (max(sg(‖f_i‖₂), ρ·m) + 1e-8)``, with
           ``m = 1/N' · sum_j sg(‖f_j‖₂)`` the mean node norm of the sample
           and ``ρ = norm_floor`` (see "Nodes of negligible norm" below;
           the official ``similarity`` has no floor, ``norm_floor=None``).
           The affinity of two nodes is ``a_ij = x_iᵀ x_j``, their cosine
           similarity.
        4. The loss averages the squared differences over the ``N'²`` node
           pairs and over the batch (the official normalisation):

               L = 1/B · sum_b 1/N'² · sum_{i,j} (a^S_bij - a^T_bij)²

    Two exact ways to compute step 4. ``X`` is the ``C×N'`` matrix of the
    unit-norm nodes, so ``A = XᵀX``:

    - ``'affinity'``: build both ``N'×N'`` matrices (``bmm``). Time
      ``O(N'²·(C_s + C_t))``, memory ``O(B·N'²)``.
    - ``'gram'``: ``‖A_S - A_T‖²_F = ‖X_S X_Sᵀ‖²_F + ‖X_T X_Tᵀ‖²_F
      - 2‖X_S X_Tᵀ‖²_F``, with the ``C_s×C_s``, ``C_t×C_t`` and ``C_s×C_t``
      Gram matrices. Time ``O(N'·(C_s + C_t)²)``, memory ``O(B·(C_s+C_t)²)``
      on top of the normalised features. On a 128×256 node map (N' = 32768)
      the affinity matrices would need 4 GiB each per sample; the Gram
      matrices need under 2 MiB.
    - ``'auto'`` (default): ``'gram'`` when
      ``N'·(C_s² + C_t² + C_s·C_t) < N'²·(C_s + C_t)`` (the multiply-adds of
      the three Gram products against those of the two affinity products),
      otherwise ``'affinity'``. For C_s = C_t = C, gram is used once
      N' > 1.5·C.

    Precision of the gram form: when S ≈ T, its three terms are large and
    cancel. The Gram matrices are computed in fp32, then cast to float64
    before they are squared and summed, so the combination itself adds no
    cancellation error. What remains comes from the fp32 rounding of the
    Gram entries: an absolute error of about 1e-7 times the mean squared
    affinity, which is at most 1. This does not depend on how close S is to
    T, so where the loss itself is below about 1e-6 the ``'affinity'`` form
    is the more precise one in relative terms. A combination that rounds
    below 0 is reported as 0, but keeps the gradient of the unclamped
    expression, which stays accurate to fp32 precision. The gradients of the
    two forms agree in any case.

    Nodes of negligible norm (differs from the official code). The norm is
    detached, so the gradient reaching a node is ``∂L/∂x_i`` divided by its
    norm. The official code divides by ``‖f_i‖₂ + 1e-8`` alone: on a narrow
    ReLU feature, a node whose features are all (nearly) 0 gets its gradient
    scaled by up to 1e8, and such nodes dominate the gradient until the
    student's feature dies (measured: docs/benchmarks.md). Here a node's
    norm is raised to at least ``norm_floor`` times the mean node norm of
    its sample (computed apart for student and teacher), so a dead node's
    gradient is at most ``1/norm_floor`` times the scale of a node of mean
    norm. What changes, and what does not:

    - Nodes whose norm is at least the floor give exactly the official
      values, and when every node is (the usual case, e.g. max pooling of a
      512-channel PSP feature, the official node definition) the loss and
      its gradient are bitwise the official ones.
    - A node of exactly zero norm has ``x_i = 0`` either way: the loss and
      the other nodes' gradients are the official ones, only its own
      gradient is bounded.
    - A node below the floor but not zero (e.g. norm 1e-6) is no longer a
      unit vector but shorter, ``‖x_i‖ = ‖f_i‖ / (ρ·m)``: its affinities
      shrink towards 0 with its norm instead of jumping to ±1.
    - A sample whose nodes are all tiny keeps the official scale-invariant
      behaviour (its floor is tiny too); one whose nodes are all 0 has zero
      gradient.

    Why 0.05: a node of ordinary norm on a ReLU feature is rarely below a
    twentieth of the mean (the official node definition, the max over a
    large window of a 512-channel PSP feature, never is), and the bound on
    a dead node's gradient, 20 times a mean node's scale, is small against
    the up to 1e8 of the official code. ``norm_floor=None`` gives the
    official formula.

    Args:
        pool (str): ``'max'`` (official) or ``'avg'`` (TPAMI). Defaults to
            ``'max'``.
        node_size (int, optional): β, the side of a node patch in locations;
            1 makes every location a node. Defaults to None.
        pool_scale (float, optional): Node side as a fraction of the map's
            side, in (0, 1]. At most one of ``node_size`` and ``pool_scale``
            may be given; with neither, the official scheme applies:
            ``pool_scale=0.5`` (with the default ``pool='max'``). Defaults to
            None.
        loss_weight (float): Multiplier of the loss (the paper's
            ``lambda_pa``). Defaults to 1.0.
        method (str): ``'auto'``, ``'gram'`` or ``'affinity'`` (see above).
            Defaults to ``'auto'``.
        norm_floor (float, optional): ``ρ`` in (0, 1]: the least norm a
            node is divided by, as a fraction of the mean node norm of its
            sample; None divides by the norm + 1e-8 only (the official
            code). Defaults to 0.05.
        level_reduction (str, optional): A multi-level tap's levels are
            ``'sum'``-med (default: SKD distils one map; several maps are
            several losses) or averaged (``'mean'``); see
            :class:`~mmkd.models.losses.levelwise.LevelwiseLoss`.
    """

    def __init__(self,
                 pool: str = 'max',
                 node_size: Optional[int] = None,
                 pool_scale: Optional[float] = None,
                 loss_weight: float = 1.0,
                 method: str = 'auto',
                 norm_floor: Optional[float] = NORM_FLOOR,
                 level_reduction: Optional[str] = None) -> None:
        super().__init__(level_reduction)
        owner = 'PairWiseLoss'

        def fraction(value, key, hint):  # None, or a number in (0, 1]
            return check_optional(check_number, value, key, low=0, high=1,
                                  low_open=True, owner=owner, hint=hint)

        self.pool = check_choice(pool, 'pool', ('max', 'avg'), owner,
                                 "'max' is the official code, 'avg' TPAMI.")
        if node_size is not None and pool_scale is not None:
            raise ConfigValueError(
                'node_size', 'at most one of node_size and pool_scale',
                f'node_size={node_size!r}, pool_scale={pool_scale!r}',
                'Give node_size for fixed node patches (the paper), '
                'pool_scale for a fraction of the map, or neither for the '
                f'official scheme (pool_scale={OFFICIAL_POOL_SCALE}).',
                owner=owner)
        if node_size is None and pool_scale is None:
            pool_scale = OFFICIAL_POOL_SCALE
        self.node_size = check_optional(
            check_positive_int, node_size, 'node_size', owner=owner,
            hint='It is the side of a node patch in feature locations, '
            'e.g. node_size=2 for 2x2 nodes (TPAMI).')
        self.pool_scale = fraction(
            pool_scale, 'pool_scale', 'It is the node side as a fraction of '
            'the map, e.g. pool_scale=0.5 (the official code).')
        self.method = check_choice(
            method, 'method', ('auto', 'gram', 'affinity'), owner,
            'The forms give the same loss; see the class doc.')
        self.norm_floor = fraction(
            norm_floor, 'norm_floor', 'It is the least node norm, as a '
            "fraction of the sample's mean node norm; None gives the "
            'official normalisation.')
        self.loss_weight = loss_weight

    def kernel_size(self, height: int, width: int) -> Tuple[int, int]:
        """The node patch (pooling kernel and stride) for an ``H×W`` map.

        Args:
            height (int): Map height ``H``.
            width (int): Map width ``W``.

        Returns:
            tuple[int, int]: ``(k_h, k_w)``, each in ``[1, side]``.
        """
        if self.node_size is not None:
            k_h = k_w = self.node_size
        else:
            k_h = int(self.pool_scale * height)
            k_w = int(self.pool_scale * width)
        return (min(max(k_h, 1), height), min(max(k_w, 1), width))

    def build_nodes(self, feat: Tensor) -> Tensor:
        """Pool a feature map into nodes and normalise each node.

        Args:
            feat (Tensor): ``(N, C, H, W)`` feature, fp32.

        Returns:
            Tensor: ``(N, C, N')`` nodes divided by their detached L2 norm
            (raised to the floor, +1e-8), ``N' = H'·W'``.
        """
        kernel = self.kernel_size(*feat.shape[-2:])
        if kernel != (1, 1):
            pool = F.max_pool2d if self.pool == 'max' else F.avg_pool2d
            feat = pool(feat, kernel, stride=kernel, ceil_mode=True)
        nodes = feat.flatten(2)
        norm = nodes.detach().norm(p=2, dim=1, keepdim=True)
        if self.norm_floor is not None:
            # max() returns a norm at or above the floor unchanged (exact)
            floor = self.norm_floor * norm.mean(dim=2, keepdim=True)
            norm = torch.maximum(norm, floor)
        return nodes / (norm + NORM_EPS)

    def choose_method(self, num_nodes: int, student_channels: int,
                      teacher_channels: int) -> str:
        """The form ``'auto'`` uses for these sizes (see the class doc).

        Args:
            num_nodes (int): ``N'``.
            student_channels (int): ``C_s``.
            teacher_channels (int): ``C_t``.

        Returns:
            str: ``'gram'`` or ``'affinity'``.
        """
        if self.method != 'auto':
            return self.method
        c_s, c_t = student_channels, teacher_channels
        gram_cost = num_nodes * (c_s * c_s + c_t * c_t + c_s * c_t)
        affinity_cost = num_nodes * num_nodes * (c_s + c_t)
        return 'gram' if gram_cost < affinity_cost else 'affinity'

    def forward_level(self, student_feat: Tensor, teacher_feat: Tensor,
                      level: int = 0) -> Tensor:
        """The pair-wise distillation loss of one pair of maps.

        Args:
            student_feat (Tensor): ``(N, C_s, H, W)`` student feature.
            teacher_feat (Tensor): ``(N, C_t, H_t, W_t)`` teacher feature,
                resized to ``H×W`` when the sizes differ.
            level (int): The level's index (unused).

        Returns:
            Tensor: Scalar fp32 loss, already multiplied by ``loss_weight``.
        """
        check_map_pair(student_feat, teacher_feat, 'PairWiseLoss',
                       ('student_feat', 'teacher_feat'))
        with fp32_math(student_feat, teacher_feat.detach()) as (s, t):
            t = resize_to(t, s.shape[-2:])
            x_s = self.build_nodes(s)
            x_t = self.build_nodes(t)
            batch, c_s, num_nodes = x_s.shape
            method = self.choose_method(num_nodes, c_s, x_t.shape[1])
            if method == 'affinity':
                # A_S - A_T in place of A_T: two N'×N' matrices live, not 3.
                diff = torch.baddbmm(
                    torch.bmm(x_t.transpose(1, 2), x_t),
                    x_s.transpose(1, 2),
                    x_s,
                    beta=-1)
                # Row norms, then a float64 sum: one fp32 reduction over all
                # B·N'² entries loses percents (measured: docs/benchmarks.md).
                total = torch.linalg.vector_norm(
                    diff, dim=-1).double().square().sum()
            else:
                total = self._gram_sq_frobenius(x_s, x_t)
            loss = total / (num_nodes**2 * batch)
        return (loss * self.loss_weight).float()

    @staticmethod
    def _gram_sq_frobenius(x_s: Tensor, x_t: Tensor) -> Tensor:
        """``sum_b ‖X_Sᵀ X_S - X_Tᵀ X_T‖²_F`` through Gram matrices.

        Args:
            x_s (Tensor): ``(B, C_s, N')`` unit-norm student nodes.
            x_t (Tensor): ``(B, C_t, N')`` unit-norm teacher nodes.

        Returns:
            Tensor: float64 scalar.
        """
        # fp32 products (the O(N'·C²) work), float64 combination (O(C²)):
        # the three terms nearly cancel when S ≈ T.
        gram_ss = torch.bmm(x_s, x_s.transpose(1, 2)).double()
        gram_tt = torch.bmm(x_t, x_t.transpose(1, 2)).double()
        gram_st = torch.bmm(x_s, x_t.transpose(1, 2)).double()
        total = (
            gram_ss.pow(2).sum() + gram_tt.pow(2).sum() -
            2 * gram_st.pow(2).sum())
        # Rounding can leave a tiny negative value where S ≈ T: report 0 but
        # keep the gradient of the unclamped expression (which is accurate
        # to fp32 precision there, unlike 0).
        return total + (total.clamp_min(0) - total).detach()
