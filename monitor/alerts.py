"""Alert rules on closed windows, with debounce and cooldown as a pure function of the windows.

Rules: the share of drifted feature columns reaches a threshold; the prediction drifted (both
against the reference reweighted to the window's hour-of-week mix, see `monitor.calendar`); the
window's error is significantly and materially above what the champion makes on such rides
(`quality`, below). A window where a rule fires is "bad". An alert goes out after
`debounce_windows` consecutive bad windows, then no new alert until a new champion (a window
with another `reference_version`) or until `cooldown_windows` windows have passed. The state
is rebuilt after a restart by feeding the published windows (and the rules that fired in each)
through `AlertState.step` again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ridestream.events import DriftDetected, DriftWindowClosed, RuleFired


@dataclass(frozen=True)
class AlertRules:
    """Thresholds of the rules and the debounce/cooldown lengths (in windows)."""

    drift_share_threshold: float = 0.5
    # Quality: the window's MSE is above the expected one at this one-sided significance ...
    quality_alpha: float = 0.01
    # ... and its RMSE at least this much above the expected RMSE. Twice the retrainer's 2 %
    # promotion margin: a retrain can at best win back the rise, and only a rise of which
    # winning back half clears the margin is worth training a challenger for.
    quality_min_rise: float = 0.04
    debounce_windows: int = 1
    cooldown_windows: int = 3
    # A window with fewer rides is published but judges nothing: the TLC files hold a few stray
    # rides years off their month, and two rides "drift" from any reference.
    min_window_rides: int = 200


def evaluate_rules(window: DriftWindowClosed, rules: AlertRules) -> list[RuleFired]:
    """The rules this window breaks, each with the number that broke it.

    The quality rule fires when the window's quality test (`monitor.quality`, carried by the
    window) has p <= `quality_alpha` AND its RMSE >= expected × (1 + `quality_min_rise`):
    significant (not one noisy window) and material (worth a retrain). Its value is the
    window's RMSE, its threshold that minimum, its detail the test's evidence.
    """
    fired: list[RuleFired] = []
    if window.rides < rules.min_window_rides:
        return fired
    share = window.drifted_share
    if share is not None and share >= rules.drift_share_threshold:
        drifted = [c.column for c in window.columns if c.drifted]
        fired.append(
            RuleFired(
                rule="data_drift_share",
                value=share,
                threshold=rules.drift_share_threshold,
                detail=f"drifted columns: {', '.join(drifted)}",
            )
        )
    prediction = window.prediction_drift
    if prediction is not None and prediction.drifted:
        fired.append(
            RuleFired(
                rule="prediction_drift",
                value=prediction.score,
                threshold=prediction.threshold,
                detail=prediction.method,
            )
        )
    quality = window.quality
    if (
        quality.rmse is not None
        and quality.expected_rmse is not None
        and quality.p_value is not None
    ):
        limit = quality.expected_rmse * (1 + rules.quality_min_rise)
        if quality.p_value <= rules.quality_alpha and quality.rmse >= limit:
            fired.append(
                RuleFired(
                    rule="quality",
                    value=quality.rmse,
                    threshold=limit,
                    detail=(
                        f"mse {quality.rmse**2:.2f} vs expected {quality.expected_rmse**2:.2f} "
                        f"on {quality.count} labelled rides in {quality.blocks} hourly blocks: "
                        f"z {quality.z:.2f}, p {quality.p_value:.2g} <= {rules.quality_alpha:g} "
                        f"(design effect {quality.design_effect:.2f}); rmse {quality.rmse:.3f} "
                        f">= expected {quality.expected_rmse:.3f} x {1 + rules.quality_min_rise:g}"
                    ),
                )
            )
    return fired


@dataclass(frozen=True)
class AlertState:
    """Debounce and cooldown, advanced one closed window at a time."""

    consecutive_bad: int = 0
    # Set while cooling down: the reference version of the last alert and windows since.
    cooldown_version: str | None = None
    cooling: bool = False
    windows_since_alert: int = 0

    def step(
        self, reference_version: str | None, bad: bool, rules: AlertRules
    ) -> tuple[AlertState, bool]:
        """The state after one more window, and whether that window raises an alert."""
        state = replace(self, consecutive_bad=self.consecutive_bad + 1 if bad else 0)
        if state.cooling:
            since = state.windows_since_alert + 1
            new_champion = reference_version != state.cooldown_version
            if new_champion or since > rules.cooldown_windows:
                state = replace(state, cooling=False, windows_since_alert=0)
            else:
                state = replace(state, windows_since_alert=since)
        fire = bad and not state.cooling and state.consecutive_bad >= rules.debounce_windows
        if fire:
            state = replace(
                state,
                consecutive_bad=0,
                cooling=rules.cooldown_windows > 0,
                cooldown_version=reference_version,
                windows_since_alert=0,
            )
        return state, fire


def alert_id(window_id: str) -> str:
    """The deterministic id of the alert raised on a window."""
    return f"alert:{window_id}"


def drift_alert(window: DriftWindowClosed, fired: list[RuleFired]) -> DriftDetected:
    """The `DriftDetected` event of a window whose rules fired."""
    versions = window.model_versions
    return DriftDetected(
        alert_id=alert_id(window.window_id),
        event_time=window.event_time,
        window_id=window.window_id,
        window_start=window.window_start,
        model_version=versions[0] if len(versions) == 1 else window.reference_version,
        rules=fired,
    )
