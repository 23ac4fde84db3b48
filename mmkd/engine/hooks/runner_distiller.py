"""The distiller a hook acts on: the runner's model, unwrapped."""
from typing import Any

from mmengine.model import is_model_wrapper

from mmkd.utils.config_checks import ConfigValueError


def runner_distiller(runner: Any, owner: str) -> Any:
    """The runner's model without its wrapper (DDP, FSDP), which must be
    an mmkd distiller.

    Args:
        runner (Runner): mmengine's runner (``runner.model`` is read).
        owner (str): The hook's name, for the message.

    Raises:
        ConfigValueError: The model is no
            :class:`~mmkd.models.distillers.SingleTeacherDistiller`.
    """
    from mmkd.models.distillers import SingleTeacherDistiller
    model = runner.model.module if is_model_wrapper(
        runner.model) else runner.model
    if not isinstance(model, SingleTeacherDistiller):
        raise ConfigValueError(
            'custom_hooks', f'{owner} with a distillation model (an '
            'mmkd.SingleTeacherDistiller or a subclass)',
            f'model {type(model).__name__}',
            f'Remove {owner} from custom_hooks, or train a distillation '
            "config (model.type='mmkd.SingleTeacherDistiller', ...).")
    return model
