"""Topic names: the one place they are spelled.

Every service asks a `Topics` object for names, so a whole run can live under a prefix
(`--topic-prefix`, `RIDESTREAM_TOPIC_PREFIX`): tests give every test its own prefix, and a
what-if replay can run beside production traffic on the same broker.
"""

from __future__ import annotations

from dataclasses import dataclass

RIDES_REQUESTED = "rides.requested"
RIDES_COMPLETED = "rides.completed"
RIDES_PREDICTIONS = "rides.predictions"
# Predictions that are not served: a challenger's under live evaluation (shadow), or the
# champion's for the rides a canary challenger serves.
RIDES_SHADOW = "rides.shadow"
DRIFT_WINDOWS = "drift.windows"
DRIFT_ALERTS = "drift.alerts"
MODELS_UPDATES = "models.updates"

DLQ_SUFFIX = ".dlq"


def dead_letter_topic(topic: str) -> str:
    """Return the dead-letter topic of `topic` (`<topic>.dlq`)."""
    return topic + DLQ_SUFFIX


@dataclass(frozen=True)
class Topics:
    """The topic names of one deployment, all under the same prefix."""

    prefix: str = ""

    @property
    def rides_requested(self) -> str:
        return self.prefix + RIDES_REQUESTED

    @property
    def rides_completed(self) -> str:
        return self.prefix + RIDES_COMPLETED

    @property
    def rides_predictions(self) -> str:
        return self.prefix + RIDES_PREDICTIONS

    @property
    def rides_shadow(self) -> str:
        return self.prefix + RIDES_SHADOW

    @property
    def drift_windows(self) -> str:
        return self.prefix + DRIFT_WINDOWS

    @property
    def drift_alerts(self) -> str:
        return self.prefix + DRIFT_ALERTS

    @property
    def models_updates(self) -> str:
        return self.prefix + MODELS_UPDATES

    def all(self) -> list[str]:
        """Every topic of the loop, without the dead-letter topics."""
        return [
            self.rides_requested,
            self.rides_completed,
            self.rides_predictions,
            self.rides_shadow,
            self.drift_windows,
            self.drift_alerts,
            self.models_updates,
        ]

    def all_with_dead_letters(self) -> list[str]:
        """Every topic of the loop and the dead-letter topic of each."""
        names = self.all()
        return names + [dead_letter_topic(name) for name in names]
