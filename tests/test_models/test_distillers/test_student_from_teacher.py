"""``student_from_teacher`` (FGD's and MGD's ``init_student``): the named
parts of the student start from the teacher's weights, the rest keep the
student's own initialisation; a part the models do not share is refused
when the distiller is built."""
import copy

import pytest
import torch

from mmkd.testing import tiny_config
from mmkd.utils.config_checks import ConfigKeyError, ConfigValueError

FGFI = 'fgfi_faster_rcnn_r50_r18_tiny_shapes'
PARTS = ['neck', 'rpn_head', 'roi_head']


def build(model_cfg, seed=0):
    from mmkd.registry import MODELS
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(model_cfg))
    model.init_weights()
    return model


@pytest.fixture(scope='module')
def same_shape_teacher():
    """The FGFI tiny pair with a teacher of the student's own layout (a
    random one: its weights differ from any student's)."""
    cfg = tiny_config(FGFI)
    cfg.model.teacher = copy.deepcopy(cfg.model.student)
    cfg.model.connectors.fpn_adapt.out_channels = 16
    return cfg.model


def test_the_named_parts_are_the_teachers_and_the_rest_the_students(
        same_shape_teacher):
    plain = build(same_shape_teacher)
    model = build(dict(same_shape_teacher, student_from_teacher=PARTS))
    student, teacher = model.student.state_dict(), model.teacher.state_dict()
    own = plain.student.state_dict()
    copied = [k for k in student if k.split('.')[0] in PARTS]
    assert copied and copied == model.from_teacher
    for key in student:
        if key in copied:
            assert torch.equal(student[key], teacher[key]), key
        else:  # the backbone: the student's own initialisation, unchanged
            assert torch.equal(student[key], own[key]), key
    # the teacher's weights differ from the student's own: a real copy
    assert not all(torch.equal(own[k], teacher[k]) for k in copied)
    # the backbone is the one part left to the student
    assert {k.split('.')[0] for k in student if k not in copied} == {
        'backbone'}


def test_the_copy_survives_a_save_and_strict_load(same_shape_teacher):
    """What a resume does: the distiller's state (the copied student) loads
    with strict=True into a distiller built again, whose init is then
    overwritten."""
    model = build(dict(same_shape_teacher, student_from_teacher=PARTS))
    with torch.no_grad():  # training moved the copied weights
        model.student.neck.fpn_convs[0].conv.weight.add_(1.0)
    state = copy.deepcopy(model.state_dict())
    again = build(dict(same_shape_teacher, student_from_teacher=PARTS),
                  seed=1)
    again.load_state_dict(state, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_a_part_of_other_shapes_is_refused_naming_the_entries():
    cfg = tiny_config(FGFI)  # the teacher's neck has 32 channels, 16 here
    with pytest.raises(ConfigValueError) as error:
        build(dict(cfg.model, student_from_teacher=['neck']))
    assert error.value.key == "model.student_from_teacher ('neck')"
    assert 'neck.lateral_convs.0.conv.weight (16, 8, 1, 1) vs (32, 32, 1, 1)' \
        in error.value.found


@pytest.mark.parametrize('prefixes, error, found', [
    (['necks'], ConfigKeyError, "'necks'"),
    ('neck', ConfigValueError, "'neck' (str)"),
    ([''], ConfigValueError, "[''] (list)")])
def test_a_prefix_that_names_no_module_is_refused(same_shape_teacher,
                                                  prefixes, error, found):
    with pytest.raises(error) as raised:
        build(dict(same_shape_teacher, student_from_teacher=prefixes))
    assert raised.value.key == 'model.student_from_teacher'
    assert raised.value.found == found
