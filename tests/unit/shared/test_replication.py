"""The replication of the topics ridestream creates follows the cluster's size."""

from __future__ import annotations

import pytest

from ridestream.stream.admin import replication_for


@pytest.mark.parametrize(
    ("brokers", "expected"), [(1, (1, 1)), (2, (2, 1)), (3, (3, 2)), (5, (3, 2))]
)
def test_replication_follows_the_number_of_brokers(brokers: int, expected: tuple[int, int]) -> None:
    assert replication_for(brokers) == expected


def test_settings_override_the_derived_replication() -> None:
    assert replication_for(3, replication_factor=2) == (2, 1)
    assert replication_for(3, min_insync_replicas=3) == (3, 3)
    assert replication_for(5, replication_factor=5, min_insync_replicas=3) == (5, 3)


def test_min_insync_replicas_never_exceeds_the_replicas() -> None:
    assert replication_for(1, min_insync_replicas=2) == (1, 1)
