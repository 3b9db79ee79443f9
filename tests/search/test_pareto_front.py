"""The Pareto front: one vectorised pass per point, the same set as pairwise dominance."""

from __future__ import annotations

import math
import random

from autocompress.search.pareto import dominates, non_dominated


def _pairwise(values, directions):  # noqa: ANN001, ANN202
    return [not any(dominates(o, v, directions) for j, o in enumerate(values) if j != i) for i, v in enumerate(values)]


def test_the_front_equals_pairwise_dominance_with_ties_duplicates_and_nan():
    rng = random.Random(0)
    directions = ("maximize", "minimize", "minimize")
    for n in (0, 1, 2, 7, 60, 300):
        values = [(rng.choice([0.1, 0.2, 0.3, rng.random()]), float(rng.randint(1, 6)), rng.choice([1.0, 2.0, 3.0]))
                  for _ in range(n)]  # fmt: skip
        if n > 2:
            values[1] = values[0]  # a duplicate: neither dominates the other
            values[2] = (math.nan, 1.0, 1.0)  # NaN is neither better nor worse, as dominates() has it
        assert non_dominated(values, directions) == _pairwise(values, directions), n


def test_a_front_of_thousands_keeps_exactly_the_undominated_points():
    """On a circle every point is a trade-off; points inside it are all dominated."""
    edge = [(math.cos(a), math.sin(a), 0.0) for a in (i * math.pi / 2 / 1999 for i in range(2000))]
    inner = [(0.5 * x, 0.5 * y, 1.0) for x, y, _ in edge]  # each worse than its edge point
    keep = non_dominated(edge + inner, ("maximize", "maximize", "minimize"))
    assert keep == [True] * 2000 + [False] * 2000
