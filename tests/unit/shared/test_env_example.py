""".env.example lists every setting of every service, so the docs cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from monitor.settings import MonitorSettings
from predictor.settings import PredictorSettings
from producer.settings import ProducerSettings
from retrainer.settings import RetrainerSettings
from ridestream.settings import Settings

ENV_EXAMPLE = Path(__file__).parents[3] / ".env.example"


def variables(model: type[BaseModel], prefix: str = "RIDESTREAM_") -> list[str]:
    """Every environment variable a settings class reads (nested sections joined by `__`)."""
    names = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            names += variables(kind, f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


@pytest.mark.parametrize(
    "settings",
    [Settings, ProducerSettings, PredictorSettings, MonitorSettings, RetrainerSettings],
    ids=lambda cls: cls.__name__,
)
def test_every_setting_is_listed_in_env_example(settings: type[BaseModel]) -> None:
    listed = {
        line.split("=", 1)[0].lstrip("# ")
        for line in ENV_EXAMPLE.read_text().splitlines()
        if "=" in line
    }
    missing = [name for name in variables(settings) if name not in listed]
    assert not missing, f"add to .env.example: {missing}"


def test_env_example_names_only_real_settings() -> None:
    known = {
        name
        for cls in (
            Settings,
            ProducerSettings,
            PredictorSettings,
            MonitorSettings,
            RetrainerSettings,
        )
        for name in variables(cls)
    }
    listed = [
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.startswith("RIDESTREAM_")
    ]
    assert set(listed) <= known, f"not a setting: {sorted(set(listed) - known)}"


def test_a_copy_of_env_example_as_dotenv_loads_in_every_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(ENV_EXAMPLE.read_text())
    monkeypatch.chdir(tmp_path)
    for cls in (Settings, ProducerSettings, PredictorSettings, MonitorSettings, RetrainerSettings):
        assert cls().kafka.bootstrap_servers  # parses: no empty value for a typed field
