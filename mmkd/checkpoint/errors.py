"""What a refused checkpoint raises, and what every refusal tells the user."""


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects outside the allow-list, or loading it
    would exceed a limit or bound (see ``limits``)."""


class CheckpointFormatError(ValueError):
    """A file is not a readable PyTorch checkpoint."""


NEVER_SWITCH_OFF = (
    'Nothing in the file has been run. Do not load it with '
    'torch.load(weights_only=False) or switch this check off: that is how a '
    'malicious checkpoint runs its code. If the file comes from a source you '
    'trust, ask for (or export there) a plain weights file, e.g. '
    "{'state_dict': model.state_dict()}.")
TOO_DEEP = (
    'it is nested deeper than {limit} levels (containers inside containers; '
    'checkpoints are nested fewer than 10). If the file is yours, save the '
    'weights again as a plain state dict')


def advice(limit: str) -> str:
    """What to do about ``limits.<limit>`` reached."""
    return ('If the file is a checkpoint you trust and it needs more, raise '
            f'mmkd.checkpoint.limits.{limit} before loading it')
