"""The summary of DistillDiagnosticsHook: its rule's bands, the suggested
weight, and which measurements it averages."""
import math

import pytest

from mmkd.engine.diagnostics import DiagnosticsHistory, suggested_weight
from mmkd.engine.diagnostics import verdict


def term(norm, task_norm, factor=1.0, weight=0.01):
    """A one-level measurement of term 'imitation'."""
    return dict(terms=dict(imitation=dict(
        tap='fpn', labels=['all'], norm=[norm, norm],
        task_norm=[task_norm, task_norm], cos=[0.5, 0.5], factor=factor,
        weight=weight, regions={})), connectors={})


@pytest.mark.parametrize('ratio,words', [
    (0.0, 'sends no gradient'), (0.049, 'too small'), (0.05, 'reaches'),
    (1.0, 'reaches'), (1.01, 'outweighs'), (math.nan, 'not measured')])
def test_bands(ratio, words):
    assert words in verdict(ratio)


def test_suggested_weight_aims_at_20_percent():
    assert suggested_weight(0.01, 0.014) == pytest.approx(0.14)
    assert suggested_weight(2.0, 4.0) == 0.1
    assert suggested_weight(1.0, 0.0) is None


def test_summary_averages_norms_at_factor_above_0_and_finite():
    history = DiagnosticsHistory()
    history.add(term(0.0, 5.0, factor=0.0))     # warm-up: left out
    history.add(term(math.inf, 5.0))            # overflowed: left out
    history.add(term(0.01, 1.0))
    history.add(term(0.015, 3.0, factor=0.5))   # at full weight: 0.03
    # mean norm 0.02 over mean task norm 2.0
    assert history.term_ratios('imitation') == pytest.approx([0.01, 0.01])
    [line] = history.summary()
    assert line.startswith("imitation: 1 % of the task's gradient on all "
                           "(tap 'fpn'), cosine +0.50: too small to change "
                           'the student; try loss_weight=0.2 (now 0.01)')
    assert line.endswith('[2 measured iterations]')
