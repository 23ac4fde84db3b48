"""NodeGraphStats (diagnose_pair_wise.py): node cosines by class pair and
relative node norms by class, against a hand-computed feature map."""
import os.path as osp
import sys

import pytest
import torch

from mmkd.testing import REPO_ROOT as REPO

sys.path.insert(0, osp.join(REPO, 'projects', 'shapes_demo'))
from shapes_demo.node_graph import NodeGraphStats  # noqa: E402


def test_cosines_and_norms_by_class():
    # one image, a 2x2 feature of 2 channels, node size 1: 4 nodes;
    # labels 4x4 (stride 2): node (0,0) class 0, (0,1) class 1,
    # (1,0) class 1, (1,1) mixed 50/50 (left out)
    feature = torch.tensor([[[3., 0.], [1., 5.]],
                            [[4., 2.], [1., 5.]]])[None]
    labels = torch.tensor([[0, 0, 1, 1],
                           [0, 0, 1, 1],
                           [1, 1, 0, 1],
                           [1, 1, 1, 0]])[None]
    stats = NodeGraphStats(node_size=1, num_classes=2)
    stats.update(feature, labels)
    # node vectors: a=(3,4) |5|, b=(0,2) |2|, c=(1,1) |sqrt2|, d=(5,5)
    mean_norm = (5 + 2 + 2 ** 0.5 + 50 ** 0.5) / 4
    norms = stats.mean_relative_norm()
    assert norms[0] == (pytest.approx(5 / mean_norm), 1)
    assert norms[1][0] == pytest.approx((2 + 2 ** 0.5) / 2 / mean_norm)
    assert norms[1][1] == 2
    cos = stats.mean_cosine()
    # class 0 - class 1: cos(a, b) = 0.8, cos(a, c) = 7 / (5 sqrt2)
    assert cos[(0, 1)] == (pytest.approx((0.8 + 7 / 50 ** 0.5) / 2), 2)
    # class 1 - class 1: one pair (b, c), cos = 2 / (2 sqrt2)
    assert cos[(1, 1)] == (pytest.approx(2 ** -0.5), 1)
    # a single class-0 node has no same-class pair
    assert (0, 0) not in cos


def test_average_pooled_nodes_and_accumulation():
    feature = torch.zeros(1, 1, 4, 4)
    feature[0, 0, :2, :2] = 2.  # one node of norm 2, three of norm 0
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    stats = NodeGraphStats(node_size=2, num_classes=1)
    stats.update(feature, labels)
    stats.update(feature, labels)
    value, count = stats.mean_relative_norm()[0]
    assert count == 8 and value == pytest.approx(1.0)  # (4 + 0 + 0 + 0) / 4
    assert stats.mean_cosine()[(0, 0)][1] == 2 * 6


def test_labels_that_do_not_split_into_nodes_are_refused():
    stats = NodeGraphStats(node_size=2, num_classes=2)
    with pytest.raises(ValueError, match='do not split'):
        stats.update(torch.ones(1, 2, 4, 4), torch.zeros(1, 5, 5))
