"""A challenger under live evaluation, and which rides it serves.

Shadow: the challenger predicts every ride beside the champion; its predictions go to
rides.shadow (role "shadow"), and rides.predictions carries the champion's as before. Canary:
the challenger's prediction is served on rides.predictions (role "canary") for the rides whose
stable hash falls under the fraction, and the champion's goes to rides.shadow for those; the
other rides are shadowed as above. Every ride gets exactly one prediction on
rides.predictions, and the selection depends on the ride id only, so every predictor of a
group (and a restarted one) serves the same rides with the same model.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # predictor.predict routes with this module: no import cycle at run time
    from predictor.predict import ServingModel

# CRC-32 values are uniform over [0, 2^32): the share under fraction * 2^32 is the fraction.
_HASH_RANGE = 2**32


@dataclass(frozen=True)
class ShadowModel:
    """The challenger under live evaluation, how it is evaluated, and the canary's share."""

    serving: ServingModel
    gate: Literal["shadow", "canary"]
    canary_fraction: float = 0.0

    @property
    def version(self) -> str:
        return self.serving.version


def canary_rides(ride_ids: Sequence[str], fraction: float) -> list[bool]:
    """For each ride id, whether a canary of `fraction` serves it (CRC-32 of the UTF-8 id
    below `fraction` of its range: stable across processes, restarts and Python versions)."""
    limit = fraction * _HASH_RANGE
    return [zlib.crc32(ride_id.encode()) < limit for ride_id in ride_ids]


def serves_challenger(ride_ids: Sequence[str], shadow: ShadowModel) -> list[bool]:
    """Which rides the challenger serves: none in shadow mode, the canary's in canary mode."""
    if shadow.gate != "canary":
        return [False] * len(ride_ids)
    return canary_rides(ride_ids, shadow.canary_fraction)
