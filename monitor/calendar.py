"""What is normal for this kind of window: hour-of-week cells and the reference's weights.

Green-taxi traffic has a weekly cycle: Saturday and Sunday rides go between other zones, at other
hours, and take other times than weekday rides. A one-day window compared with a whole-month
reference therefore "drifts" every weekend. So each ride gets a cell of the week — its day type
(weekday, Saturday, Sunday; a US federal holiday counts as a Sunday) × its hour of day — and the
champion's reference is reweighted to the window's own mix of cells: a reference ride in cell c
weighs (window share of c) / (reference rows in c). A Sunday window is then compared with the
reference's Sunday rides, a weekday morning with weekday mornings, a whole week with the whole
reference (its mix is the reference's own, up to noise).

Cells come from the reference, once per champion: within a day type, consecutive hours are merged
until each cell holds at least `min_cell_rows` reference rides (night hours get wider cells); a
day type with fewer rows than that is merged with its neighbour (Saturday + Sunday, then the
whole week). Every hour of the week maps to exactly one cell, so the cells partition the
reference and the weights always sum to one.

References logged by `ridestream.training.reference_frame` hold each ride's pickup time, so
holidays are Sundays in the reference as in the window. Older references hold only
`pickup_hour` and `pickup_weekday`: their holidays count as the weekday they fell on.

What makes it fail: a window whose cells hold almost no reference rides weighs a few rides
heavily (their noise becomes the reference's: `min_cell_rows` bounds it); a change that
happens only in the cycle itself (Saturday traffic moved, weekdays did not) is only seen on the
days it touches; and a reference from a month with an unusual week (a storm, a strike) makes
that week's cells the norm.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ridestream.features import PICKUP_TIME

WEEKDAY, SATURDAY, SUNDAY = 0, 1, 2
DAY_TYPES = ("weekday", "saturday", "sunday")
HOURS = 24
# Each cell holds at least this many reference rides: enough that a Sunday-night cell is not a
# handful of rides whose zones stand in for all Sunday nights. With a 20,000-ride reference a
# weekday hour holds ~600 (one cell per hour), a Saturday ~2,500 in all (~10 cells).
DEFAULT_MIN_CELL_ROWS = 200


@dataclass(frozen=True)
class CalendarOptions:
    """How the week is cut into cells."""

    min_cell_rows: int = DEFAULT_MIN_CELL_ROWS
    holidays_as_sunday: bool = True


@dataclass(frozen=True)
class Cells:
    """The week's hours cut into cells, and the reference's rows per cell."""

    cell_of_hour: np.ndarray  # (day type, hour of day) -> cell id
    reference_rows: np.ndarray  # reference rows per cell
    holidays_as_sunday: bool

    @property
    def count(self) -> int:
        return len(self.reference_rows)

    def describe(self) -> str:
        """One line: cells per day type."""
        per_day = [len(np.unique(self.cell_of_hour[d])) for d in range(len(DAY_TYPES))]
        return ", ".join(f"{n} {d}" for n, d in zip(per_day, DAY_TYPES, strict=True))


def day_types(weekday: np.ndarray) -> np.ndarray:
    """Day type of each weekday number (Monday = 0)."""
    weekday = np.asarray(weekday, dtype="int64")
    return np.where(weekday == 5, SATURDAY, np.where(weekday == 6, SUNDAY, WEEKDAY))


def _hours(pickup_hour: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(np.asarray(pickup_hour, dtype="float64")), 0, HOURS - 1).astype("int64")


def _merged_day_groups(rows: np.ndarray, min_rows: int) -> list[list[int]]:
    """Weekday / Saturday / Sunday, merged while a group holds fewer than `min_rows` rows."""
    totals = rows.sum(axis=1)
    if totals[SATURDAY] >= min_rows and totals[SUNDAY] >= min_rows:
        groups = [[WEEKDAY], [SATURDAY], [SUNDAY]]
    else:
        groups = [[WEEKDAY], [SATURDAY, SUNDAY]]
    if any(totals[g].sum() < min_rows for g in groups):
        groups = [[WEEKDAY, SATURDAY, SUNDAY]]
    return groups


def reference_calendar(
    frame: pd.DataFrame, holidays_as_sunday: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
    """Day type, hour of day and date of each reference row (date None without pickup times).

    From the pickup times when the frame has them (references logged since the calendar), else
    from `pickup_hour` and `pickup_weekday` (no holidays, no dates); None without either.
    """
    if PICKUP_TIME in frame:
        times = pd.DatetimeIndex(frame[PICKUP_TIME])
        dates = times.normalize().to_numpy(dtype="datetime64[D]")
        return pickup_day_types(times, holidays_as_sunday), times.hour.to_numpy(), dates
    if {"pickup_hour", "pickup_weekday"} <= set(frame.columns):
        days = day_types(frame["pickup_weekday"].to_numpy())
        return days, _hours(frame["pickup_hour"].to_numpy()), None
    return None


def build_cells(
    days: np.ndarray, hours: np.ndarray, options: CalendarOptions
) -> tuple[Cells, np.ndarray]:
    """The cells of a reference (from each row's day type and hour of day), and each row's."""
    rows = np.zeros((len(DAY_TYPES), HOURS), dtype="int64")
    np.add.at(rows, (days, hours), 1)
    cell_of_hour = np.zeros((len(DAY_TYPES), HOURS), dtype="int64")
    cell = 0
    for group in _merged_day_groups(rows, options.min_cell_rows):
        first, filled = cell, 0
        hourly = rows[group].sum(axis=0)
        ids = np.empty(HOURS, dtype="int64")
        for hour in range(HOURS):
            ids[hour] = cell
            filled += hourly[hour]
            if filled >= options.min_cell_rows:
                cell, filled = cell + 1, 0
        trailing = ids == cell
        if trailing.any():  # the last hours hold too few rows: they join the cell before them
            if cell > first:
                ids[trailing] = cell - 1
            else:
                cell += 1
        cell_of_hour[group] = ids
    row_cells = cell_of_hour[days, hours]
    reference_rows = np.bincount(row_cells, minlength=cell)
    return Cells(cell_of_hour, reference_rows, options.holidays_as_sunday), row_cells


@lru_cache(maxsize=64)
def _holidays(first_year: int, last_year: int) -> pd.DatetimeIndex:
    from pandas.tseries.holiday import USFederalHolidayCalendar

    start, end = pd.Timestamp(first_year, 1, 1), pd.Timestamp(last_year, 12, 31)
    return pd.DatetimeIndex(USFederalHolidayCalendar().holidays(start, end))


def pickup_day_types(times: pd.DatetimeIndex, holidays_as_sunday: bool = True) -> np.ndarray:
    """The day type of each time; US federal holidays are Sundays when asked."""
    days = day_types(times.weekday.to_numpy())
    if holidays_as_sunday and len(times):
        holidays = _holidays(int(times.year.min()), int(times.year.max()))
        days = np.where(times.normalize().isin(holidays), SUNDAY, days)
    return days


def pickup_cells(cells: Cells, pickup: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """The cell of each pickup time (holidays are Sundays when the cells say so)."""
    times = pd.DatetimeIndex(pickup)
    days = pickup_day_types(times, cells.holidays_as_sunday)
    return cells.cell_of_hour[days, times.hour.to_numpy()]


def window_mix(cells: Cells, window_cells: np.ndarray) -> np.ndarray:
    """The window's share of rides in each cell (sums to 1; all zeros for an empty window)."""
    counts = np.bincount(window_cells, minlength=cells.count).astype("float64")
    total = counts.sum()
    return counts / total if total else counts


def reference_weights(mix: np.ndarray, row_cells: np.ndarray) -> np.ndarray:
    """Weight of each reference row so that the reference has the window's mix (sums to 1).

    A cell the window has but the rows given do not (a column's NaN took them all) drops out,
    and the other cells are scaled up to fill its share.
    """
    rows = np.bincount(row_cells, minlength=len(mix)).astype("float64")
    per_row = np.divide(mix, rows, out=np.zeros_like(mix), where=rows > 0)
    weights = per_row[row_cells]
    total = weights.sum()
    return weights / total if total > 0 else np.full(len(row_cells), 1.0 / max(len(row_cells), 1))
