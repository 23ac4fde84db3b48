"""The pair-wise term's graph of a feature map, summarised by the classes of
its nodes: what ``diagnose_pair_wise.py`` measures."""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

#: A node is labelled with a class when at least this fraction of its pixels
#: have it; mixed nodes are left out.
PURITY = 0.75


class NodeGraphStats:
    """Accumulates, over images, the mean cosine similarity of two nodes of
    one image by their pair of classes, and the mean node norm relative to
    the mean node norm of its image by class.

    Nodes are ``node_size`` × ``node_size`` average-pooled cells of the
    feature map, as in :class:`mmkd.models.losses.PairWiseLoss` with
    ``pool='avg'``.

    Args:
        node_size (int): Node side in feature cells.
        num_classes (int): Classes of the labels; larger labels (ignore
            index) count as no class.
        purity (float): Least fraction of a node's pixels of one class for
            the node to count.
    """

    def __init__(self, node_size: int, num_classes: int,
                 purity: float = PURITY) -> None:
        self.node_size = node_size
        self.num_classes = num_classes
        self.purity = purity
        self.cos: Dict[Tuple[int, int], list] = {}
        self.norm: Dict[int, list] = {}

    def update(self, feature: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch.

        Args:
            feature (Tensor): (N, C, H, W) feature map.
            labels (Tensor): (N, H·s, W·s) class indices, s an integer
                (the image-to-feature stride).
        """
        nodes = F.avg_pool2d(feature.float(), self.node_size)
        n, _, h, w = nodes.shape
        if labels.shape[-2] % h or labels.shape[-1] % w:
            raise ValueError(
                f'labels of size {tuple(labels.shape[-2:])} do not split '
                f'into the {h}x{w} nodes of a {tuple(feature.shape[-2:])} '
                f'feature with node size {self.node_size}.')
        onehot = F.one_hot(labels.long().clamp(max=self.num_classes),
                           self.num_classes + 1)[..., :self.num_classes]
        fractions = F.avg_pool2d(onehot.permute(0, 3, 1, 2).float(),
                                 (labels.shape[-2] // h,
                                  labels.shape[-1] // w))
        top, cls = fractions.flatten(2).max(1)  # (N, h·w)
        vectors = nodes.flatten(2)  # (N, C, h·w)
        norms = vectors.norm(dim=1)
        relative = norms / norms.mean(1, keepdim=True).clamp(min=1e-12)
        unit = vectors / norms.clamp(min=1e-12)[:, None]
        similarity = torch.einsum('nci,ncj->nij', unit, unit)
        for i in range(n):
            keep = top[i] >= self.purity
            classes = cls[i][keep]
            sim = similarity[i][keep][:, keep]
            rel = relative[i][keep]
            for a in classes.unique().tolist():
                in_a = classes == a
                entry = self.norm.setdefault(a, [0.0, 0])
                entry[0] += rel[in_a].sum().item()
                entry[1] += int(in_a.sum())
                for b in classes.unique().tolist():
                    if b < a:
                        continue
                    block = sim[in_a][:, classes == b]
                    if a == b:  # each unordered pair once, no self pairs
                        block = block[torch.triu(torch.ones_like(
                            block, dtype=torch.bool), diagonal=1)]
                    if block.numel():
                        entry = self.cos.setdefault((a, b), [0.0, 0])
                        entry[0] += block.sum().item()
                        entry[1] += block.numel()

    def mean_cosine(self) -> Dict[Tuple[int, int], Tuple[float, int]]:
        """(class a, class b) -> (mean cosine, number of node pairs)."""
        return {k: (s / c, c) for k, (s, c) in self.cos.items()}

    def mean_relative_norm(self) -> Dict[int, Tuple[float, int]]:
        """class -> (mean node norm / its image's mean node norm, nodes)."""
        return {k: (s / c, c) for k, (s, c) in self.norm.items()}
