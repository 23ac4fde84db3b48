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
    with pytest.raises(ConfigValueError) as e:
        DistillerOptimWrapperConstructor(dict(student=SGD), paramwise_cfg={})
    assert e.value.key == 'optim_wrapper.paramwise_cfg'
    assert e.value.expected == 'None'
    assert e.value.found == '{} (dict)'
    with pytest.raises(ConfigKeyError) as e:
        DistillerOptimWrapperConstructor(dict(student=SGD, teacher=SGD))
    assert e.value.key == 'optim_wrapper.teacher'
    assert e.value.expected == "one of ('student', 'discriminator')"
    assert e.value.found == "'teacher'"
    with pytest.raises(ConfigValueError) as e:
        DistillerOptimWrapperConstructor(dict(discriminator=SGD))
    assert e.value.key == 'optim_wrapper.student'
    assert e.value.expected == 'the optim wrapper config of the student'
    assert e.value.found == 'nothing'
    with pytest.raises(ConfigValueError) as e:
        DistillerOptimWrapperConstructor(dict(student='SGD'))
    assert e.value.key == 'optim_wrapper.student'
    assert 'an optim wrapper config' in e.value.expected
    assert e.value.found == "'SGD' (str)"
    with pytest.raises(ConfigValueError) as e:
        DistillerOptimWrapperConstructor(['student'])
    assert e.value.key == 'optim_wrapper'
    assert 'a dict of the entries' in e.value.expected
    assert e.value.found == "['student'] (list)"


def test_a_discriminator_optimizer_without_a_discriminator():
    constructor = DistillerOptimWrapperConstructor(
        dict(student=SGD, discriminator=SGD))
    with pytest.raises(ConfigValueError) as e:
        constructor(Distiller(discriminator=False))
    assert e.value.key == 'optim_wrapper.discriminator'
    assert e.value.expected == 'nothing, as model.discriminator is not set'
    assert e.value.found == 'an optim wrapper config'
