"""`ridestream backtest` refuses bad arguments in one line, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest.cli import main

MONTHS = ["--train", "2021-01", "--val", "2021-02", "--months", "2021-03"]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The exit code and the stderr of `ridestream backtest ARGV` (argparse exits)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().err.strip()


def test_months_without_a_data_file_are_named_with_the_fetch_command(tmp_path: Path, capsys):
    code, error = run([*MONTHS, "--data-dir", str(tmp_path)], capsys)
    assert code == 2
    assert "\n" not in error
    assert f"no green file for 2021-01 2021-02 2021-03 in {tmp_path}" in error
    assert "ridestream data fetch --color green --months 2021-01 2021-02 2021-03" in error


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--train", "2021-13"], "expected YYYY-MM"),
        (["--window", "1w"], "--window"),
        (["--months", "2021-03", "2021-03"], "twice"),
        (["--policies", "hourly"], "invalid choice"),
    ],
)
def test_bad_arguments_are_one_line_errors(extra, message, capsys):
    code, error = run([*MONTHS, *extra], capsys)
    assert code == 2
    assert message in error and "\n" not in error
