"""A distiller loads a plain student checkpoint too (mmengine's
``load_from`` pointing at a pretrained student)."""
from mmengine.logging import print_log
from torch import nn


def prefix_plain_student_state(distiller: nn.Module, state_dict: dict,
                               prefix: str, *args) -> None:
    """A ``load_state_dict`` pre-hook: when ``state_dict`` holds none of the
    distiller's own entries (``student.*``, ``connectors.*``, ...) but
    entries of its student, prefix those with ``student.``, in place.

    Args:
        distiller (nn.Module): The distiller (the hook's module).
        state_dict (dict): The state dict being loaded.
        prefix (str): The distiller's own prefix in it.
    """
    own = tuple(f'{prefix}{name}.' for name, _ in distiller.named_children())
    if any(key.startswith(own) for key in state_dict):
        return
    student_keys = set(distiller.student.state_dict())
    plain = [k for k in state_dict if k[len(prefix):] in student_keys]
    for key in plain:
        state_dict[f'{prefix}student.{key[len(prefix):]}'] = \
            state_dict.pop(key)
    if plain:
        print_log(
            f'Loading a plain student checkpoint ({len(plain)} entries) into '
            "the distiller's student.", logger='current')
