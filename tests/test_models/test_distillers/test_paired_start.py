"""A distilled student starts from exactly the weights the plain student
model starts from with the same seed, and leaves the global random stream
where the plain model leaves it: building the teacher, the connectors and a
critic draws from a fork of it. Without this, a distilled run and the
baseline of the same seed differ by their initialisation as well as by the
distillation (measured on the demo: a distillation term of weight 1e-6
moved the val mIoU by -6.7 at one seed and +2.6 at another)."""
import copy

import pytest
import torch
from mmengine.registry import MODELS, DefaultScope

from mmkd.testing import tiny_config

CONFIGS = ('skd_pspnet_r50_r18_tiny_shapes',  # SKD with a critic
           'fgfi_faster_rcnn_r50_r18_tiny_shapes')  # FGFI with connectors


def start(cfg, model_cfg, seed):
    """Build and initialise ``model_cfg`` after seeding; the model and the
    next draws of the global generator."""
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        torch.manual_seed(seed)
        model = MODELS.build(copy.deepcopy(model_cfg))
        model.init_weights()
        return model, torch.rand(4)


@pytest.mark.parametrize('name', CONFIGS)
def test_distilled_student_starts_where_the_baseline_does(name):
    cfg = tiny_config(name)
    plain, plain_next = start(cfg, cfg.model.student, seed=3)
    distiller, distiller_next = start(cfg, cfg.model, seed=3)
    student = distiller.student.state_dict()
    assert student.keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert torch.equal(value, student[key]), key
    assert torch.equal(plain_next, distiller_next)
    # and the seed still matters: another seed, another start
    other, _ = start(cfg, cfg.model.student, seed=4)
    assert any(not torch.equal(v, other.state_dict()[k])
               for k, v in plain.state_dict().items())


def test_connectors_and_critic_still_differ_between_seeds():
    """The forked draws are seeded too: the parts built from them are
    reproducible per seed, and differ between seeds."""
    cfg = tiny_config(CONFIGS[0])
    a, _ = start(cfg, cfg.model, seed=3)
    b, _ = start(cfg, cfg.model, seed=3)
    c, _ = start(cfg, cfg.model, seed=4)
    critic = {k: v for k, v in a.discriminator.state_dict().items()
              if v.is_floating_point()}
    for key, value in critic.items():
        assert torch.equal(value, b.discriminator.state_dict()[key]), key
    assert any(not torch.equal(v, c.discriminator.state_dict()[k])
               for k, v in critic.items())
