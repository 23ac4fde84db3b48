"""The measurements of a run, kept for its end-of-training summary."""
import math
from typing import Any, Dict, List

from .measurement import ratio_list
from .verdict import describe_term, mean


class DiagnosticsHistory:
    """Collects :func:`~mmkd.engine.diagnostics.measurement.measure_step`
    results and sums them up per term (:mod:`.verdict` states the rule).

    A term's ratio in the summary is the ratio of its mean gradient norm to
    the task's mean gradient norm (a step whose task gradient is nearly 0
    does not dominate it, as a mean of ratios would), over the measured
    iterations at which its scheduled factor was above 0 and its gradients
    finite, each norm divided by that factor (the summary speaks of the
    term at its full ``loss_weight``).
    """

    def __init__(self) -> None:
        self.terms: Dict[str, List[Dict[str, Any]]] = {}
        self.connectors: Dict[str, List[float]] = {}

    def add(self, measurement: Dict[str, Any]) -> None:
        """Keep one measurement."""
        for name, term in measurement['terms'].items():
            self.terms.setdefault(name, []).append(term)
        for name, norm in measurement['connectors'].items():
            self.connectors.setdefault(name, []).append(norm)

    def used(self, name: str) -> List[Dict[str, Any]]:
        """The measurements of term ``name`` the summary uses: at a
        scheduled factor > 0, with finite gradients (an fp16 step whose
        gradients overflowed is left out, as its optimizer step is)."""
        return [t for t in self.terms.get(name, [])
                if t['factor'] > 0 and all(
                    math.isfinite(v) for v in t['norm'] + t['task_norm'])]

    def term_ratios(self, name: str) -> List[float]:
        """The summary's ratio of term ``name`` per level, then over all
        levels (empty when no measurement is used)."""
        used = self.used(name)
        if not used:
            return []
        levels = len(used[0]['norm'])
        norms = [mean([t['norm'][i] / t['factor'] for t in used])
                 for i in range(levels)]
        task = [mean([t['task_norm'][i] for t in used])
                for i in range(levels)]
        return ratio_list(norms, task)

    def summary(self) -> List[str]:
        """The summary, one line per term, then one per connector."""
        lines = []
        for name, measured in self.terms.items():
            ratios = self.term_ratios(name)
            last = measured[-1]
            if not ratios:
                lines.append(f'{name}: its scheduled factor was 0, or its '
                             'gradients not finite, at every measured '
                             f'iteration ({len(measured)}); nothing to say.')
                continue
            used = self.used(name)
            regions = {}
            for region in last['regions']:
                stats = [t['regions'][region] for t in used
                         if region in t['regions']]
                regions[region] = dict(
                    cover=mean([s['cover'][-1] for s in stats]))
                if all(s['diff'] for s in stats):
                    regions[region]['diff'] = mean(
                        [s['diff'][-1] for s in stats])
            lines.append(describe_term(
                name, last['tap'], last['labels'], ratios,
                mean([t['cos'][-1] for t in used]), last['weight'], regions,
                len(used)))
        for name, norms in self.connectors.items():
            if '/' not in name:
                lines.append(f'connector {name}: weight norm {norms[0]:.3g} '
                             f'-> {norms[-1]:.3g} over the measured '
                             'iterations')
        return lines
