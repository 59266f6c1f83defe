"""Typed settings, read from the environment once (in a service's `__main__`) and passed down.

Every variable has the prefix `RIDESTREAM_`; nested settings use `__`, e.g.
`RIDESTREAM_KAFKA__BOOTSTRAP_SERVERS`. Defaults work on the embedded setup: the local broker
from `ridestream broker up` and a SQLite MLflow store under `.ridestream/`. Each service
subclasses `Settings` with its own section (`RIDESTREAM_PREDICTOR__...` and so on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ridestream.topics import Topics

# Values that a copied .env.example may still hold: refused, so no deployment runs on them.
PLACEHOLDER_SECRETS = frozenset({"changeme", "change-me", "secret", "password", "xxx", ""})

STATE_DIR = Path(".ridestream")


class KafkaSettings(BaseModel):
    """How to reach the Kafka cluster (and authenticate, when SASL is on)."""

    # Which client library talks to Kafka (ridestream.stream.client): kafka-python (pure
    # Python, with its fast path) or confluent (librdkafka, `pip install 'ridestream[confluent]'`).
    client: Literal["kafka-python", "confluent"] = "kafka-python"
    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    client_id: str = "ridestream"
    # Largest value a service accepts; larger ones are dead-lettered. Kafka's default is 1 MiB;
    # a ride event is ~300 bytes, so anything near this is poison.
    max_message_bytes: int = Field(default=1_048_576, gt=0)
    request_timeout_ms: int = Field(default=30_000, gt=0)
    # How long a client waits for the first broker at start; a wrong password or an absent
    # broker looks the same until then (kafka-python's default is 30 s).
    bootstrap_timeout_ms: int = Field(default=10_000, gt=0)
    # Longest wait between two reconnects to a broker that went away. kafka-python's default is
    # 30 s (the Java client's 1 s): after a 30 s outage a client then sits idle up to ~30 s more
    # with the broker back (measured: the predictor's stuck batch 89 s -> 40 s at 1 s).
    reconnect_backoff_max_ms: int = Field(default=1_000, gt=0)
    # How long a consumer that died (kill -9, lost host) keeps its partitions before the group
    # hands them to a live one; heartbeats go every third of it. kafka-python's default is 45 s:
    # a restarted predictor sat idle ~40 s. 6 s is the broker's group.min.session.timeout.ms.
    session_timeout_ms: int = Field(default=10_000, ge=6_000)
    # How long a transaction left open by a crashed exactly-once producer holds back
    # read_committed readers before the broker aborts it (kafka-python's default is 60 s).
    transaction_timeout_ms: int = Field(default=10_000, gt=0)
    # Replicas of each topic ridestream creates, and how many must have a write before it is
    # acknowledged (acks=all). Unset: derived from the cluster's size when the topic is created
    # (3 and 2 on three or more brokers, 1 and 1 on one; see stream/admin.py).
    replication_factor: int | None = Field(default=None, gt=0)
    min_insync_replicas: int | None = Field(default=None, gt=0)

    @field_validator("sasl_password")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value().lower() in PLACEHOLDER_SECRETS:
            raise ValueError("is a placeholder: set a real secret")
        return value

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        complete = self.sasl_mechanism and self.sasl_username and self.sasl_password
        if self.security_protocol.startswith("SASL_") and not complete:
            raise ValueError(
                f"security_protocol={self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password"
            )
        return self

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments shared by kafka-python's producer, consumer and admin client."""
        config: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "bootstrap_timeout_ms": self.bootstrap_timeout_ms,
            "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            assert self.sasl_password is not None  # checked by _sasl_needs_credentials
            config["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            config["ssl_cafile"] = str(self.ssl_cafile)
        return config


class MlflowSettings(BaseModel):
    """Where the MLflow tracking store and model registry live."""

    tracking_uri: str = f"sqlite:///{STATE_DIR}/mlflow.db"
    artifact_location: str = str(STATE_DIR / "mlartifacts")
    experiment: str = "ride-duration"
    model_name: str = "ride-duration"


class BrokerSettings(BaseModel):
    """The local Apache Kafka that `ridestream broker up` starts (no Docker): one node, or a
    cluster of `brokers` nodes whose node n (from 0) serves on `port + 2n` and
    `controller_port + 2n` with its data in `data_dir/node-<n+1>`."""

    host: str = "127.0.0.1"
    port: int = Field(default=19092, gt=0, lt=65536)
    controller_port: int = Field(default=19093, gt=0, lt=65536)
    brokers: int = Field(default=1, gt=0, le=9)
    data_dir: Path = STATE_DIR / "kafka"
    heap: str = "512m"
    partitions: int = Field(default=4, gt=0)
    startup_timeout_s: float = Field(default=90.0, gt=0)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"


def settings_error(error: ValidationError, section: str | None = None) -> str:
    """One line for settings that do not validate, naming each variable and what is wrong
    (`section`: the errors are of that section's model, validated on its own)."""
    prefix = ("RIDESTREAM_", f"{section}__") if section else ("RIDESTREAM_",)
    return "; ".join(
        f"{''.join(prefix)}{'__'.join(str(part) for part in e['loc'])}".upper() + f": {e['msg']}"
        for e in error.errors()
    )


class Settings(BaseSettings):
    """What every ridestream process needs. Services subclass it with their own section."""

    model_config = SettingsConfigDict(
        env_prefix="RIDESTREAM_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    kafka: KafkaSettings = KafkaSettings()
    mlflow: MlflowSettings = MlflowSettings()
    broker: BrokerSettings = BrokerSettings()
    topic_prefix: str = ""
    data_dir: Path = Path("data")
    state_dir: Path = STATE_DIR
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Port for the Prometheus metrics endpoint; 0 turns it off.
    metrics_port: int = Field(default=0, ge=0, lt=65536)
    # Interface of the metrics endpoint: loopback by default; 0.0.0.0 in a container (compose).
    metrics_host: str = "127.0.0.1"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)
