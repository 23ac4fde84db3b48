"""Leave a model's buffers and every random generator as they were."""
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Run the block, then put back ``model``'s buffers (e.g. BatchNorm's
    running statistics and ``num_batches_tracked``) and the random states
    of python, numpy and torch (CPU and every CUDA device) as they were
    before it.

    A gradient probe runs no forward of its own, but a backward through a
    gradient-checkpointed block recomputes that block's forward in train
    mode (updating its BatchNorm statistics) and draws from the random
    generators (dropout); neither may leak into training.

    Args:
        model (nn.Module): The model whose buffers are restored (the
            distiller, unwrapped).
    """
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    py_state, np_state = random.getstate(), np.random.get_state()
    # a CUDA generator nobody initialised has not been drawn from
    devices = (list(range(torch.cuda.device_count()))
               if torch.cuda.is_initialized() else [])
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            for buffer, saved in buffers:
                if not torch.equal(buffer, saved):
                    # through .data: the step's graph saved some buffers
                    # (BatchNorm's running statistics) and checks their
                    # version counter in its backward
                    buffer.data.copy_(saved)
            random.setstate(py_state)
            np.random.set_state(np_state)
