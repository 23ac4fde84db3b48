"""FGDLoss: the official formula (yzd-v/FGD's FeatureLoss, re-implemented
here from it) on a batch without padding, the terms one by one, the
relation blocks' initialisation, one set of layers per level, gradients,
clear errors."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from mmkd.models.losses import FGDLoss
from mmkd.models.losses.fgd import attention
from mmkd.utils.config_checks import ConfigValueError


def samples(boxes, size):
    out = []
    for image_boxes in boxes:
        sample = DetDataSample(metainfo=dict(img_shape=size,
                                             batch_input_shape=size))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor(image_boxes, dtype=torch.float32).reshape(
                -1, 4))
        out.append(sample)
    return out


def official_fgd(loss, s, t, gt_bboxes, img_shape, level=0):
    """The official formula, step by step, on ``loss``'s layers."""
    align = loss.align[level]
    if not isinstance(align, nn.Identity):
        s = align(s)
    n, c, h, w = s.shape

    def att(x):
        value = x.abs()
        fea = value.mean(1, keepdim=True)
        sa = (h * w * F.softmax((fea / loss.temp).view(n, -1), 1)).view(
            n, h, w)
        ca = c * F.softmax(value.mean(2).mean(2) / loss.temp, 1)
        return sa, ca

    s_t, c_t = att(t)
    s_s, c_s = att(s)
    fg = torch.zeros_like(s_t)
    bg = torch.ones_like(s_t)
    for i in range(n):
        b = gt_bboxes[i]
        nb = torch.ones_like(b)
        nb[:, 0] = b[:, 0] / img_shape[1] * w
        nb[:, 2] = b[:, 2] / img_shape[1] * w
        nb[:, 1] = b[:, 1] / img_shape[0] * h
        nb[:, 3] = b[:, 3] / img_shape[0] * h
        wmin, wmax = torch.floor(nb[:, 0]).int(), torch.ceil(nb[:, 2]).int()
        hmin, hmax = torch.floor(nb[:, 1]).int(), torch.ceil(nb[:, 3]).int()
        area = 1.0 / (hmax.view(1, -1) + 1 - hmin.view(1, -1)) / (
            wmax.view(1, -1) + 1 - wmin.view(1, -1))
        for j in range(len(b)):
            cells = fg[i][hmin[j]:hmax[j] + 1, wmin[j]:wmax[j] + 1]
            fg[i][hmin[j]:hmax[j] + 1, wmin[j]:wmax[j] + 1] = torch.maximum(
                cells, area[0][j])
        bg[i] = torch.where(fg[i] > 0, 0, 1)
        if torch.sum(bg[i]):
            bg[i] /= torch.sum(bg[i])
    mse = nn.MSELoss(reduction='sum')
    weight_t = torch.sqrt(s_t.unsqueeze(1)) * torch.sqrt(c_t[..., None, None])
    fea_t, fea_s = t * weight_t, s * weight_t
    fg_loss = mse(fea_s * torch.sqrt(fg[:, None]),
                  fea_t * torch.sqrt(fg[:, None])) / n
    bg_loss = mse(fea_s * torch.sqrt(bg[:, None]),
                  fea_t * torch.sqrt(bg[:, None])) / n
    mask_loss = (c_s - c_t).abs().sum() / n + (s_s - s_t).abs().sum() / n

    def relation(block, x):
        mask = F.softmax(block.conv_mask(x).view(n, 1, h * w), 2)
        context = torch.matmul(x.view(n, c, h * w).unsqueeze(1),
                               mask.unsqueeze(-1)).view(n, c, 1, 1)
        return x + block.channel_add(context)

    rela_loss = mse(relation(loss.relation_student[level], s),
                    relation(loss.relation_teacher[level], t)) / n
    return (loss.alpha * fg_loss + loss.beta * bg_loss +
            loss.gamma * mask_loss + loss.lambda_rela * rela_loss)


BOXES = [[[8., 4., 40., 30.], [20., 20., 28., 28.]], []]


def randomise_relations(loss):
    """Non-zero last convolutions (the official init makes the relation
    term 0 at first), so that the reference check covers it."""
    torch.manual_seed(5)
    for block in list(loss.relation_student) + list(loss.relation_teacher):
        nn.init.normal_(block.channel_add[-1].weight, std=0.1)


@pytest.mark.parametrize('weights', [
    dict(alpha=1e-3, beta=5e-4, gamma=5e-4, lambda_rela=5e-6),
    dict(alpha=1., beta=1., gamma=1., lambda_rela=1.),
], ids=['retinanet', 'ones'])
@pytest.mark.parametrize('channels', [(8, 8), (6, 8)], ids=['same', 'align'])
def test_matches_the_official_formula(channels, weights):
    """The official RetinaNet weights, and all weights 1 (where no term
    is too small to be checked)."""
    torch.manual_seed(0)
    loss = FGDLoss(*channels, temp=0.5, **weights)
    randomise_relations(loss)
    s = torch.randn(2, channels[0], 8, 12)
    t = torch.randn(2, channels[1], 8, 12) * 3
    size = (32, 48)  # stride 4, no padding: the official scaling
    ours = loss(s, t, data_samples=samples(BOXES, size))
    expected = official_fgd(
        loss, s, t, [x.gt_instances.bboxes for x in samples(BOXES, size)],
        size)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_terms_one_by_one():
    torch.manual_seed(0)
    s = torch.randn(2, 8, 8, 12)
    t = torch.randn(2, 8, 8, 12)
    data = samples(BOXES, (32, 48))
    terms = {}
    for term in ('alpha', 'beta', 'gamma', 'lambda_rela'):
        weights = dict(alpha=0., beta=0., gamma=0., lambda_rela=0.)
        weights[term] = 1.0
        terms[term] = FGDLoss(8, 8, **weights)(s, t, data_samples=data)
    # the official init: R_S and R_T are the identity at first, so the
    # relation term is the plain squared error sum / N
    assert terms['lambda_rela'].item() == pytest.approx(
        (s - t).pow(2).sum().item() / 2, rel=1e-5)
    # attention term by hand
    s_s, c_s = attention(s, 0.5)
    s_t, c_t = attention(t, 0.5)
    assert terms['gamma'].item() == pytest.approx(
        ((c_s - c_t).abs().sum() + (s_s - s_t).abs().sum()).item() / 2,
        rel=1e-5)
    # the second image has no box: all its weight is background
    both = FGDLoss(8, 8, alpha=1., beta=1., gamma=0., lambda_rela=0.)
    assert both(s, t, data_samples=data).item() == pytest.approx(
        terms['alpha'].item() + terms['beta'].item(), rel=1e-5)
    assert terms['alpha'].item() > 0 and terms['beta'].item() > 0
    # the attention sums to H·W (spatial) and C (channel)
    assert s_t.sum((1, 2)).tolist() == pytest.approx([96., 96.])
    assert c_t.sum(1).tolist() == pytest.approx([8., 8.])


def test_levels_gradients_and_the_teachers_relation_block():
    torch.manual_seed(0)
    loss = FGDLoss(4, 8, num_levels=2)
    randomise_relations(loss)
    s = [torch.randn(2, 4, 8, 12, requires_grad=True),
         torch.randn(2, 4, 4, 6, requires_grad=True)]
    t = [torch.randn(2, 8, 8, 12), torch.randn(2, 8, 4, 6)]
    data = samples(BOXES, (32, 48))
    total = loss(s, t, data_samples=data)
    by_level = sum(loss.forward_level(s[i], t[i], i, data) for i in (0, 1))
    assert total.item() == pytest.approx(by_level.item(), rel=1e-6)
    total.backward()
    assert all(x.grad.abs().sum() > 0 for x in s)
    for level in range(2):
        assert loss.align[level].weight.grad.abs().sum() > 0
        # the teacher's GcBlock learns too (the official code)
        assert loss.relation_teacher[level].channel_add[0].weight.grad.abs(
        ).sum() > 0


def test_errors():
    data = samples(BOXES, (32, 48))
    with pytest.raises(ConfigValueError) as e:
        FGDLoss(4, 4)([torch.zeros(2, 4, 2, 2)] * 2,
                      [torch.zeros(2, 4, 2, 2)] * 2, data_samples=data)
    assert (e.value.key, e.value.owner) == ('num_levels', 'FGDLoss')
    assert e.value.expected == '2, the levels of the student tap'
    assert e.value.found == '1'
