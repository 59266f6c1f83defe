"""`ridestream train` on the real TLC files: the course baseline and our default model."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ridestream.training import main
from tests import tripdata


@pytest.fixture
def mlflow_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RIDESTREAM_MLFLOW__TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setenv("RIDESTREAM_MLFLOW__ARTIFACT_LOCATION", str(tmp_path / "artifacts"))
    monkeypatch.chdir(tmp_path)  # a stray ./mlruns or .env would show here, not in the repo
    return tmp_path


def rmse_of(output: str) -> float:
    match = re.search(r"validation RMSE (\d+\.\d+)", output)
    assert match, output
    return float(match.group(1))


@pytest.mark.slow
def test_train_prints_course_baseline_then_default_model_rmse(
    mlflow_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tripdata.months_dir("2021-01", "2021-02")
    args = ["--train", "2021-01", "--val", "2021-02", "--data-dir", str(data_dir)]
    assert main([*args, "--model", "linear"]) == 0
    linear = capsys.readouterr().out
    assert 7.38 <= rmse_of(linear) <= 7.86
    assert "version 1" in linear and "champion: version 1" in linear

    assert main([*args, "--promote"]) == 0
    gbm = capsys.readouterr().out
    assert rmse_of(gbm) <= 5.5
    assert "version 2 (gbm)" in gbm and "champion: version 2 (previous: 1)" in gbm
    assert not (mlflow_env / "mlruns").exists()


def test_missing_month_is_a_one_line_error(
    mlflow_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--train", "1999-01", "--val", "1999-02", "--data-dir", str(mlflow_env)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ridestream train: no trip file for 1999-01") and err.count("\n") == 1


def test_bad_tag_is_a_one_line_error(mlflow_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--train", "2021-01", "--val", "2021-02", "--tag", "oops"])
    assert code == 2
    assert "--tag needs KEY=VALUE" in capsys.readouterr().err
