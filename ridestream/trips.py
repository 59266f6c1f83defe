"""Reading NYC TLC trip record files: whole (`read_trips`) or streamed (`iter_trip_batches`).

Both green (`lpep_*` times) and yellow (`tpep_*` times) files are read, as parquet or CSV
(`.csv`, `.csv.gz`). Streaming goes through pyarrow record batches, so memory does not grow
with the file. A file that is not a trip file is refused with `NotATripFileError`, whose
message is one line saying why.

Ride ids are deterministic: `<file stem>:<row number>`, so two replays of the same file, the
training run and the retrainer all name the same ride the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ridestream.features import DROPOFF_TIME, PICKUP_TIME, RIDE_ID, TARGET, duration_minutes

# TLC column names per colour: green uses lpep_*, yellow tpep_* (the rest is shared).
_TIME_COLUMNS = {
    "green": ("lpep_pickup_datetime", "lpep_dropoff_datetime"),
    "yellow": ("tpep_pickup_datetime", "tpep_dropoff_datetime"),
}
ZONE_COLUMNS = ("PULocationID", "DOLocationID")
REQUIRED_COLUMNS = (*ZONE_COLUMNS, "trip_distance")
OPTIONAL_COLUMNS = ("VendorID", "passenger_count")
PARQUET_MAGIC = b"PAR1"
CSV_SUFFIXES = (".csv", ".csv.gz")
# ~64k rows: big enough that per-batch overhead vanishes, small enough to stay a few MB.
DEFAULT_BATCH_ROWS = 65_536


class NotATripFileError(ValueError):
    """The file is not a TLC trip record file (the message says why, in one line)."""


@dataclass(frozen=True)
class TripBatch:
    """A chunk of consecutive rows of one trip file, as numpy columns.

    Times are `datetime64[us]` (NaT where missing); numbers are float64 (NaN where missing),
    so a missing value never turns into a fake 0. `first_row` is the file row of element 0.
    """

    source: str
    first_row: int
    pickup: np.ndarray
    dropoff: np.ndarray
    pu_location_id: np.ndarray
    do_location_id: np.ndarray
    trip_distance: np.ndarray
    vendor_id: np.ndarray
    passenger_count: np.ndarray

    def __len__(self) -> int:
        return len(self.pickup)

    def head(self, rows: int) -> TripBatch:
        """The first `rows` rows of the batch."""
        return TripBatch(
            source=self.source,
            first_row=self.first_row,
            pickup=self.pickup[:rows],
            dropoff=self.dropoff[:rows],
            pu_location_id=self.pu_location_id[:rows],
            do_location_id=self.do_location_id[:rows],
            trip_distance=self.trip_distance[:rows],
            vendor_id=self.vendor_id[:rows],
            passenger_count=self.passenger_count[:rows],
        )

    @property
    def rows(self) -> np.ndarray:
        """The file row number of every element (what `ride_id` is built from)."""
        return np.arange(self.first_row, self.first_row + len(self), dtype=np.int64)


def month_path(data_dir: Path, month: str, color: str = "green") -> Path:
    """Where the monthly TLC file of `month` (YYYY-MM) lives in the data dir."""
    return Path(data_dir) / f"{color}_tripdata_{month}.parquet"


def ride_id(source: str, row: int) -> str:
    """The deterministic ride id of row `row` of the file named `source`."""
    return f"{source}:{row}"


def source_name(path: Path) -> str:
    """The name ride ids use for a file: its name without `.parquet`, `.csv` or `.csv.gz`."""
    name = Path(path).name
    for suffix in (".parquet", ".csv.gz", ".csv"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def trip_color(columns: Sequence[str]) -> str:
    """The TLC colour ("green" or "yellow") of a schema; raises NotATripFileError otherwise."""
    names = set(columns)
    color = next((c for c, cols in _TIME_COLUMNS.items() if set(cols) <= names), None)
    if color is None:
        raise NotATripFileError("no lpep_/tpep_ pickup and drop-off columns")
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise NotATripFileError(f"{color} trip columns missing: {', '.join(missing)}")
    return color


def _file_format(path: Path) -> str:
    if not path.is_file():
        raise NotATripFileError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(4)
    if head == PARQUET_MAGIC:
        return "parquet"
    if path.name.endswith(CSV_SUFFIXES):
        return "csv"
    raise NotATripFileError(f"{path}: neither a parquet file nor a .csv/.csv.gz file")


def _wanted_columns(path: Path, columns: Sequence[str]) -> tuple[str, list[str]]:
    try:
        color = trip_color(columns)
    except NotATripFileError as error:
        raise NotATripFileError(f"{path}: {error}") from None
    pickup, dropoff = _TIME_COLUMNS[color]
    wanted = [pickup, dropoff, *REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in columns)]
    return color, wanted


def _record_batches(path: Path, batch_rows: int) -> tuple[str, Iterator[pa.RecordBatch]]:
    """The colour and a stream of record batches with only the columns a ride needs."""
    if _file_format(path) == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise NotATripFileError(f"{path}: unreadable parquet ({_first_line(error)})") from None
        color, wanted = _wanted_columns(path, parquet.schema_arrow.names)
        return color, parquet.iter_batches(batch_size=batch_rows, columns=wanted)
    try:
        header = pacsv.open_csv(path).schema.names
    except (pa.ArrowException, OSError, UnicodeDecodeError) as error:
        raise NotATripFileError(f"{path}: unreadable CSV ({_first_line(error)})") from None
    color, wanted = _wanted_columns(path, header)
    types: dict[str, pa.DataType] = {name: pa.float64() for name in wanted[2:]}
    types.update({wanted[0]: pa.timestamp("us"), wanted[1]: pa.timestamp("us")})
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=8 << 20),
        convert_options=pacsv.ConvertOptions(include_columns=wanted, column_types=types),
    )
    return color, _rebatch(reader, batch_rows)


def _rebatch(batches: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        for start in range(0, batch.num_rows, batch_rows):
            yield batch.slice(start, batch_rows)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _floats(batch: pa.RecordBatch, name: str) -> np.ndarray:
    if name not in batch.schema.names:
        return np.full(batch.num_rows, np.nan)
    column = batch.column(name)
    if pa.types.is_null(column.type):
        return np.full(batch.num_rows, np.nan)
    return np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _times(column: pa.Array) -> np.ndarray:
    return np.asarray(
        column.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False), dtype="datetime64[us]"
    )


def iter_trip_batches(path: Path, batch_rows: int = DEFAULT_BATCH_ROWS) -> Iterator[TripBatch]:
    """Stream a TLC trip file (parquet or CSV, green or yellow) as `TripBatch` chunks.

    Raises NotATripFileError at once (before the first batch) if the file is not a trip file.
    """
    path = Path(path)
    color, batches = _record_batches(path, batch_rows)
    return _trip_batches(source_name(path), color, batches)


def _trip_batches(
    source: str, color: str, batches: Iterator[pa.RecordBatch]
) -> Iterator[TripBatch]:
    pickup, dropoff = _TIME_COLUMNS[color]
    first_row = 0
    for batch in batches:
        yield TripBatch(
            source=source,
            first_row=first_row,
            pickup=_times(batch.column(pickup)),
            dropoff=_times(batch.column(dropoff)),
            pu_location_id=_floats(batch, "PULocationID"),
            do_location_id=_floats(batch, "DOLocationID"),
            trip_distance=_floats(batch, "trip_distance"),
            vendor_id=_floats(batch, "VendorID"),
            passenger_count=_floats(batch, "passenger_count"),
        )
        first_row += batch.num_rows


def trip_file_color(path: Path) -> str:
    """The TLC colour of a trip file; raises NotATripFileError if it is not one."""
    color, _ = _record_batches(Path(path), DEFAULT_BATCH_ROWS)
    return color


def count_rows(path: Path) -> int:
    """The number of rows of a trip file (parquet: from the footer; CSV: by streaming it)."""
    path = Path(path)
    if _file_format(path) == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    return sum(len(batch) for batch in iter_trip_batches(path))


def _zone_ids(values: np.ndarray) -> pd.Series:
    series = pd.Series(values)
    # int64 as before; a file with missing zones keeps them as <NA> instead of failing.
    return series.astype("int64") if not series.isna().any() else series.astype("Int64")


def read_trips(path: Path) -> pd.DataFrame:
    """Read a whole TLC trip file as a rides frame with drop-off time and `duration_min`."""
    path = Path(path)
    color, batches = _record_batches(path, DEFAULT_BATCH_ROWS)
    chunks = list(_trip_batches(source_name(path), color, batches))
    source = source_name(path)

    def column(name: str, dtype: str) -> np.ndarray:
        parts = [getattr(chunk, name) for chunk in chunks]
        return np.concatenate(parts) if parts else np.array([], dtype=dtype)

    rows = sum(len(chunk) for chunk in chunks)
    frame = pd.DataFrame(
        {
            RIDE_ID: [ride_id(source, row) for row in range(rows)],
            PICKUP_TIME: pd.to_datetime(column("pickup", "datetime64[us]")),
            DROPOFF_TIME: pd.to_datetime(column("dropoff", "datetime64[us]")),
            # Dtypes changed at 2023-02 (int32 ids): cast so months concatenate cleanly.
            "PULocationID": _zone_ids(column("pu_location_id", "float64")),
            "DOLocationID": _zone_ids(column("do_location_id", "float64")),
            "trip_distance": column("trip_distance", "float64").astype("float64"),
        }
    )
    frame[TARGET] = duration_minutes(frame[PICKUP_TIME], frame[DROPOFF_TIME])
    frame.attrs["color"] = color
    return frame
