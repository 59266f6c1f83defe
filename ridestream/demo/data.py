"""The trip files the demo needs: fetch the missing months before anything starts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ridestream.demo.processes import DemoError
from ridestream.tripdata_fetch import FetchError, fetch, missing_months
from ridestream.trips import month_path

COLOR = "green"


def ensure_months(
    data_dir: Path, months: Sequence[str], *, base_url: str, timeout_s: float = 30.0
) -> list[Path]:
    """The files of `months` in `data_dir`, downloading those missing from `base_url` first.

    Prints one line per download (size, rate, rows). Raises DemoError with one line naming the
    months still missing, the URL tried and how to supply them when a download fails.
    """
    data_dir = Path(data_dir).resolve()  # messages name the folder wherever it was given from
    missing = missing_months(data_dir, months, COLOR)
    if missing:
        print(
            f"fetching {len(missing)} missing month(s) into {data_dir} from {base_url}", flush=True
        )
        try:
            fetch(
                data_dir,
                COLOR,
                missing,
                base_url=base_url,
                timeout_s=timeout_s,
                on_done=lambda done: print(
                    f"  {COLOR} {done.month}: {done.describe()}", flush=True
                ),
            )
        except FetchError as error:
            still = " ".join(missing_months(data_dir, missing, COLOR))
            raise DemoError(
                f"no trip files for {still} in {data_dir}, and fetching them from {base_url} "
                f"failed ({error}): put {COLOR}_tripdata_YYYY-MM.parquet files in a folder named "
                f"by RIDESTREAM_DATA_DIR (or --data-dir), or give --base-url of a mirror"
            ) from None
    return [month_path(data_dir, month, COLOR) for month in months]
