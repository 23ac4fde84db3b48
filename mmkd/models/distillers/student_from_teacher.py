"""The student's parts that start from the teacher's weights (FGD's and
MGD's ``init_student``: the official code copies the teacher's neck and
heads into the student before training)."""
from typing import Dict, List, Sequence

import torch
import torch.nn as nn
from mmengine.logging import print_log

from mmkd.utils.config_checks import ConfigKeyError, ConfigValueError, describe

KEY = 'model.student_from_teacher'


def teacher_entries(student: nn.Module, teacher: nn.Module,
                    prefixes: Sequence[str]) -> List[str]:
    """The state-dict entries of ``student`` under ``prefixes`` (module
    paths, e.g. ``'neck'``, ``'bbox_head'``) that start from the teacher's,
    checked when the distiller is built: each prefix names a module of both
    models, and every entry under it has the teacher's name and shape.

    Args:
        student (nn.Module): The student.
        teacher (nn.Module): The teacher (its weights loaded).
        prefixes (Sequence[str]): ``model.student_from_teacher``.

    Returns:
        list[str]: The entries to copy, in the student's order.

    Raises:
        ConfigValueError: A prefix that is not a module path of both models
            (naming the top-level modules of each), or entries whose name
            or shape differs (naming them).
    """
    if isinstance(prefixes, str) or not all(
            isinstance(p, str) and p for p in prefixes):
        raise ConfigValueError(
            KEY, "a list of module paths, e.g. ['neck', 'bbox_head']",
            describe(prefixes))
    s_state, t_state = student.state_dict(), teacher.state_dict()
    entries: List[str] = []
    for prefix in prefixes:
        for side, model in (('student', student), ('teacher', teacher)):
            if prefix not in dict(model.named_modules()):
                raise ConfigKeyError(
                    KEY, f'module paths of both models; the {side} has '
                    f'{sorted(n for n, _ in model.named_children())} at the '
                    'top', repr(prefix),
                    f'{prefix!r} is no module of the {side}.')
        under = [k for k in s_state if k.startswith(prefix + '.')]
        missing = [k for k in under if k not in t_state]
        other = [f'{k} {tuple(s_state[k].shape)} vs '
                 f'{tuple(t_state[k].shape)}'
                 for k in under if k in t_state
                 and s_state[k].shape != t_state[k].shape]
        if missing or other or not under:
            raise ConfigValueError(
                f'{KEY} ({prefix!r})',
                'entries with the same names and shapes in the student and '
                'the teacher', (f'student entries the teacher lacks: '
                                f'{missing[:5]}' if missing else '') +
                (f' shapes that differ (student vs teacher): {other[:5]}'
                 if other else '') + ('no entries' if not under else ''),
                'Copy only parts the two models share, e.g. the neck and '
                'heads of a student with the teacher\'s channels.')
        entries += [k for k in under if k not in entries]
    return entries


@torch.no_grad()
def copy_from_teacher(student: nn.Module, teacher: nn.Module,
                      entries: Sequence[str]) -> None:
    """Copy the teacher's ``entries`` into the student, in place (after the
    student's own ``init_weights``)."""
    t_state = teacher.state_dict()
    s_state: Dict[str, torch.Tensor] = student.state_dict()
    for key in entries:
        s_state[key].copy_(t_state[key])
    print_log(f'{KEY}: {len(entries)} entries of the student start from the '
              "teacher's.", logger='current')
