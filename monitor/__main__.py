"""`ridestream monitor` (also `python -m monitor`): the drift and quality monitor.

Wiring only: parse arguments, read settings once, and run `monitor.service.run` under the
service runner (`ridestream.runner`) with references from the registry (retried, bounded:
RIDESTREAM_MONITOR__REGISTRY_RETRY_*). SIGTERM/SIGINT finish the batch in hand, flush, commit
and close.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from pydantic import ValidationError

from monitor.service import monitor_config, registry_reference_provider, run
from monitor.settings import MonitorOptions, MonitorSettings
from ridestream.cli import add_kafka_options, with_kafka_options
from ridestream.runner import UsageError, run_service
from ridestream.settings import settings_error

log = logging.getLogger("monitor")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line (every option overrides its RIDESTREAM_MONITOR__* setting)."""
    parser = _Parser(
        prog="ridestream monitor",
        description=(
            "Join predictions with completed rides, close event-time windows, compute drift "
            "(Evidently's tests, against the champion's reference) and quality per window, "
            "publish DriftWindowClosed on drift.windows and DriftDetected on drift.alerts."
        ),
    )
    parser.add_argument(
        "--window", help="tumbling window by pickup time: 1d, 6h, 30m (default: 1d)"
    )
    parser.add_argument(
        "--window-rides", type=int, help="count windows of this many rides (instead of --window)"
    )
    parser.add_argument(
        "--slice", help="time slices that count windows are assembled from (default: 1h)"
    )
    parser.add_argument("--lateness", help="allowed lateness of events (default: 2h)")
    parser.add_argument(
        "--group-id", help="consumer group (RIDESTREAM_MONITOR__GROUP_ID, default: monitor)"
    )
    add_kafka_options(parser)
    parser.add_argument("--reports-dir", help="where Evidently snapshots (JSON) are written")
    parser.add_argument("--html", action="store_true", help="also save each snapshot as HTML")
    parser.add_argument(
        "--workspace", help="add each snapshot to this Evidently workspace (`evidently ui`)"
    )
    parser.add_argument("--no-snapshots", action="store_true", help="do not build snapshots")
    parser.add_argument("--drift-share", type=float, help="drifted-share alert threshold (0.5)")
    parser.add_argument(
        "--quality-alpha", type=float, help="quality test significance, one-sided (0.01)"
    )
    parser.add_argument(
        "--quality-min-rise", type=float, help="minimum RMSE rise over expected (0.04)"
    )
    parser.add_argument("--debounce", type=int, help="consecutive bad windows per alert (1)")
    parser.add_argument("--cooldown", type=int, help="windows without alert after one (3)")
    parser.add_argument("--cat-threshold", type=float, help="Evidently categorical threshold")
    parser.add_argument("--num-threshold", type=float, help="Evidently numerical threshold")
    return parser.parse_args(list(argv))


def settings_from(args: argparse.Namespace) -> MonitorSettings:
    """Settings from the environment, with the command line on top."""
    settings = MonitorSettings()
    overrides: dict[str, Any] = {
        "window": args.window,
        "window_rides": args.window_rides,
        "slice": args.slice,
        "lateness": args.lateness,
        "group_id": args.group_id,
        "reports_dir": args.reports_dir,
        "workspace": args.workspace,
        "drift_share_threshold": args.drift_share,
        "quality_alpha": args.quality_alpha,
        "quality_min_rise": args.quality_min_rise,
        "debounce_windows": args.debounce,
        "cooldown_windows": args.cooldown,
        "cat_threshold": args.cat_threshold,
        "num_threshold": args.num_threshold,
    }
    options = settings.monitor.model_dump()
    options.update({k: v for k, v in overrides.items() if v is not None})
    if args.html:
        options["html"] = True
    if args.no_snapshots:
        options["snapshots"] = False
    try:
        monitor = MonitorOptions.model_validate(options)
    except ValidationError as error:  # named by variable, though it may come from an option
        raise UsageError(settings_error(error, section="monitor")) from None
    return with_kafka_options(settings, args).model_copy(update={"monitor": monitor})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ridestream monitor`; returns the exit code."""

    def read_settings() -> MonitorSettings:
        settings = settings_from(parse_args(sys.argv[1:] if argv is None else argv))
        monitor_config(settings.monitor)  # a bad --window or --lateness: exit 2 now
        return settings

    def serve(settings: MonitorSettings, stop: threading.Event) -> None:
        provider = registry_reference_provider(
            settings, dataclasses.replace(settings.monitor.registry_backoff, sleep=stop.wait)
        )
        stats = run(settings, provider, stop)
        log.info(
            "%d batches, %d records, %d dead letters",
            stats.batches,
            stats.polled,
            stats.dead_letters,
        )

    return run_service("ridestream monitor", read_settings, serve)


if __name__ == "__main__":
    sys.exit(main())
