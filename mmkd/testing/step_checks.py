"""What one training step of a distillation config must show (the
published-setting configs' tests)."""
import math
from typing import Mapping, Sequence, Set

import torch


def assert_distillation_step(model, model_cfg: Mapping, log_vars: Mapping,
                             expected_losses: Set[str],
                             before: Sequence[torch.Tensor]) -> None:
    """The step logged exactly ``expected_losses`` as ``distill.loss_<name>``,
    each finite and positive (random teacher vs random student), scheduled
    losses at factor 1, no gradient in the teacher, and the learnable parameters
    (``before``: their values before the step) changed."""
    logged = {k[len('distill.loss_'):] for k in log_vars
              if k.startswith('distill.loss_')}
    assert logged == expected_losses
    for loss in logged:
        value = float(log_vars[f'distill.loss_{loss}'])
        assert math.isfinite(value) and value > 0, (loss, value)
    for loss in model_cfg.get('loss_schedules') or {}:
        assert float(log_vars[f'distill_factor.{loss}']) == 1.0
    assert all(p.grad is None for p in model.teacher.parameters())
    after = [p for p in model.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(after, before))
