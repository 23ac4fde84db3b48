"""DistillerOptimWrapperConstructor: a student and a discriminator optimizer
(an OptimWrapperDict); its config checked when it is built."""
import pytest
import torch.nn as nn

from mmkd.engine.optimizers.distiller_optim_wrapper_constructor import \
    DistillerOptimWrapperConstructor
from mmkd.utils.config_checks import ConfigKeyError, ConfigValueError

SGD = dict(optimizer=dict(type='SGD', lr=0.1))


class Distiller(nn.Module):

    def __init__(self, discriminator: bool = True) -> None:
        super().__init__()
        self.student = nn.Linear(2, 2)
        self.connectors = nn.ModuleDict(dict(adapt=nn.Linear(2, 2)))
        self.discriminator = nn.Linear(2, 1) if discriminator else None


def test_one_optimizer_per_part():
    wrappers = DistillerOptimWrapperConstructor(
        dict(student=SGD, discriminator=SGD))(Distiller())
    student = wrappers['student'].optimizer.param_groups[0]['params']
    critic = wrappers['discriminator'].optimizer.param_groups[0]['params']
    model = Distiller()
    assert len(student) == 4  # student and connector weights and biases
    assert len(critic) == len(list(model.discriminator.parameters()))


def test_bad_configs_are_explained():
    with pytest.raises(ConfigValueError, match=(
            r'^optim_wrapper\.paramwise_cfg: expected None, found \{\} '
            r'\(dict\)\. Give it inside optim_wrapper\.student')):
        DistillerOptimWrapperConstructor(dict(student=SGD), paramwise_cfg={})
    with pytest.raises(ConfigKeyError, match=(
            r"^optim_wrapper\.teacher: expected one of \('student', "
            r"'discriminator'\), found 'teacher'\.")):
        DistillerOptimWrapperConstructor(dict(student=SGD, teacher=SGD))
    with pytest.raises(ConfigValueError, match=(
            r'^optim_wrapper\.student: expected the optim wrapper config of '
            'the student, found nothing')):
        DistillerOptimWrapperConstructor(dict(discriminator=SGD))
    with pytest.raises(ConfigValueError, match=(
            r'^optim_wrapper\.student: expected an optim wrapper config .*'
            r"found 'SGD' \(str\)")):
        DistillerOptimWrapperConstructor(dict(student='SGD'))
    with pytest.raises(ConfigValueError, match=(
            r'^optim_wrapper: expected a dict of the entries')):
        DistillerOptimWrapperConstructor(['student'])


def test_a_discriminator_optimizer_without_a_discriminator():
    constructor = DistillerOptimWrapperConstructor(
        dict(student=SGD, discriminator=SGD))
    with pytest.raises(ConfigValueError, match=(
            r'^optim_wrapper\.discriminator: expected nothing, as '
            r'model\.discriminator is not set.*Remove it')):
        constructor(Distiller(discriminator=False))
