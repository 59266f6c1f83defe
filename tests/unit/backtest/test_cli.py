"""`ridestream backtest` refuses bad arguments in one line, before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest.cli import main


def test_a_month_without_a_data_file_names_the_file_and_the_fetch_command(tmp_path: Path, capsys):
    code = main(
        [
            "--train",
            "2021-01",
            "--val",
            "2021-02",
            "--months",
            "2021-03",
            "--data-dir",
            str(tmp_path),
        ]
    )
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert error.count("\n") == 0
    assert f"no green file for 2021-01 2021-02 2021-03 in {tmp_path}" in error
    assert "ridestream data fetch --color green --months 2021-01 2021-02 2021-03" in error


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train", "2021-13", "--val", "2021-02", "--months", "2021-03"], "expected YYYY-MM"),
        (
            ["--train", "2021-01", "--val", "2021-02", "--months", "2021-03", "--window", "1w"],
            "--window",
        ),
        (["--train", "2021-01", "--val", "2021-02", "--months", "2021-03", "2021-03"], "twice"),
        (
            [
                "--train",
                "2021-01",
                "--val",
                "2021-02",
                "--months",
                "2021-03",
                "--policies",
                "hourly",
            ],
            "invalid choice",
        ),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    error = capsys.readouterr().err.strip()
    assert code == 2
    assert message in error and "\n" not in error
