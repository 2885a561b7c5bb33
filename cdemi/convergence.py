"""When a distillation curve has flattened: the ``converged`` verdict every study record carries.

The rule (:func:`verdict`): split the per-epoch validation accuracies into windows of
``window`` (default 20%) of the epochs; the run has converged when the mean of the last window
is within ``tolerance`` (default 1 point) of the mean of the window before it.  A curve still
climbing by more than that, or falling by more than that, has not.  Curves are read on the
validation split only, never on the test set.
"""
from __future__ import annotations

import math
from typing import Sequence

WINDOW, TOLERANCE = 0.2, 1.0


def min_epochs(window: float = WINDOW) -> int:
    """The shortest curve the rule can judge: two windows of at least 2 epochs each (10 at 20%)."""
    return math.ceil(2 / window)


def verdict(accuracies: Sequence[float], window: float = WINDOW, tolerance: float = TOLERANCE) -> dict:
    """The convergence verdict of one curve.

    :param accuracies: validation accuracy (percent) after each epoch, in order.
    :param window: fraction of the epochs in each of the two compared windows, in (0, 0.5].
    :param tolerance: largest allowed difference of the two windows' means, in points.
    :returns: ``converged`` (bool), ``last_mean`` and ``previous_mean`` (percent), ``change``
        (last minus previous, points), ``window_epochs``, ``window`` and ``tolerance``.
    :raises ValueError: a window outside (0, 0.5], a negative tolerance, or fewer than two epochs
        per window (a curve of fewer than ``2 / window`` epochs).
    """
    if not 0 < window <= 0.5:
        raise ValueError(f"window must lie in (0, 0.5], got {window}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 points, got {tolerance}")
    n = max(1, math.floor(len(accuracies) * window))
    if n < 2 or 2 * n > len(accuracies):
        raise ValueError(f"a curve of {len(accuracies)} epochs is too short for windows of {window:.0%}: "
                         f"each needs at least 2 epochs, so at least {min_epochs(window)} epochs")
    last = sum(accuracies[-n:]) / n
    previous = sum(accuracies[-2 * n:-n]) / n
    change = last - previous
    return {"converged": abs(change) <= tolerance, "last_mean": last, "previous_mean": previous, "change": change,
            "window_epochs": n, "window": window, "tolerance": tolerance}


def plateau_epoch(accuracies: Sequence[float], window: float = WINDOW, tolerance: float = TOLERANCE) -> int | None:
    """The fewest epochs after which the curve counts as flattened: the first ``e`` such that the
    verdict on the first ``e`` epochs is converged and the mean of its last window is within
    ``tolerance`` of the whole curve's last-window mean.  None when the whole curve has not
    converged.  Epoch counts below ``2 / window`` are skipped (too short for the rule)."""
    whole = verdict(accuracies, window, tolerance)
    if not whole["converged"]:
        return None
    for e in range(min_epochs(window), len(accuracies) + 1):
        prefix = verdict(accuracies[:e], window, tolerance)
        if prefix["converged"] and abs(prefix["last_mean"] - whole["last_mean"]) <= tolerance:
            return e
    return len(accuracies)
