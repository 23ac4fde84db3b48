"""What a refused checkpoint raises, and what every refusal tells the user."""


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint holds objects outside the allow-list of plain types."""


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
