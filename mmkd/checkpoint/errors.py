"""What a refused checkpoint raises, and what every refusal tells the user."""


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint is refused before it is loaded: it holds objects outside
    the allow-list of plain types, or loading it would cost far more than
    its contents (compressed, overlapping or oversized members, storages
    larger than their data, allocating calls, nesting too deep)."""


class CheckpointFormatError(ValueError):
    """A file is not a readable PyTorch checkpoint (empty, truncated, an HTML
    page, random bytes)."""


#: Tells the user what not to do, in every refusal.
NEVER_SWITCH_OFF = (
    'Nothing in the file has been run. Do not load it with '
    'torch.load(weights_only=False) or switch this check off: that is how a '
    'malicious checkpoint runs its code. If the file comes from a source you '
    'trust, ask for (or export there) a plain weights file, e.g. '
    "{'state_dict': model.state_dict()}.")


#: The reason given for a checkpoint nested too deeply (``limit``: the
#: number of levels allowed).
TOO_DEEP = (
    'it is nested deeper than {limit} levels (containers inside containers; '
    'state dicts and training checkpoints are nested fewer than 10), too '
    'deep to check and load safely. If the file is yours, save the weights '
    'again as a plain state dict')
