"""Champion or challenger: the promotion rule, as one pure function.

A challenger is promoted only when its RMSE on the held-out rides is at most the champion's
RMSE on the SAME rides times (1 - margin). The margin keeps noise from flapping the champion
back and forth: with a 2% margin, a challenger that is merely as good stays a challenger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_MARGIN = 0.02


@dataclass(frozen=True)
class Decision:
    """Promote or reject, the RMSE the challenger had to reach, and why."""

    promote: bool
    challenger_rmse: float
    champion_rmse: float | None
    required_rmse: float | None
    reason: str


def decide(
    challenger_rmse: float, champion_rmse: float | None, margin: float = DEFAULT_MARGIN
) -> Decision:
    """Promote when `challenger_rmse <= champion_rmse * (1 - margin)`; no champion (or one that
    cannot be scored) → promote; a challenger without a finite RMSE is never promoted."""
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    if not math.isfinite(challenger_rmse):
        return Decision(False, challenger_rmse, champion_rmse, None, "challenger has no RMSE")
    if champion_rmse is None or not math.isfinite(champion_rmse):
        return Decision(True, challenger_rmse, champion_rmse, None, "no champion to beat")
    required = champion_rmse * (1 - margin)
    if challenger_rmse <= required:
        reason = (
            f"challenger RMSE {challenger_rmse:.4f} <= {required:.4f} "
            f"(champion {champion_rmse:.4f} - {margin:.0%})"
        )
        return Decision(True, challenger_rmse, champion_rmse, required, reason)
    reason = (
        f"challenger RMSE {challenger_rmse:.4f} > {required:.4f} "
        f"(champion {champion_rmse:.4f} - {margin:.0%})"
    )
    return Decision(False, challenger_rmse, champion_rmse, required, reason)
