"""Settings as the `RIDESTREAM_*` environment of a service the tests start as a process."""

from __future__ import annotations

from pydantic import BaseModel, SecretStr

from ridestream.settings import KafkaSettings, MlflowSettings


def settings_environment(settings: BaseModel, prefix: str = "RIDESTREAM_") -> dict[str, str]:
    """The `RIDESTREAM_*` variables from which a service reads back exactly `settings`."""
    env: dict[str, str] = {}
    for name, value in settings:
        key = f"{prefix}{name.upper()}"
        if isinstance(value, BaseModel):
            env.update(settings_environment(value, key + "__"))
        elif isinstance(value, SecretStr):
            env[key] = value.get_secret_value()
        elif value is not None:
            env[key] = str(value)
    return env


def broker_and_registry_environment(
    kafka: KafkaSettings, topic_prefix: str, mlflow: MlflowSettings
) -> dict[str, str]:
    """The test's broker, topics and MLflow store as `RIDESTREAM_*` variables."""
    return {
        **settings_environment(kafka, "RIDESTREAM_KAFKA__"),
        **settings_environment(mlflow, "RIDESTREAM_MLFLOW__"),
        "RIDESTREAM_TOPIC_PREFIX": topic_prefix,
    }
