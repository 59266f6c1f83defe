"""The vectorised partitioner picks the partitions Kafka's default partitioner picks."""

from __future__ import annotations

import random

import numpy as np
from kafka.partitioner.default import murmur2 as kafka_murmur2

from ridestream.stream.fastpath import murmur2, partitions_for_keys


def test_murmur2_matches_kafka_for_keys_of_every_length() -> None:
    rng = random.Random(7)
    keys = [bytes(rng.randrange(256) for _ in range(length)) for length in range(0, 40)] * 3
    keys += [f"green_tripdata_2021-01:{row}".encode() for row in range(2_000)]

    assert murmur2(keys).tolist() == [kafka_murmur2(key) for key in keys]


def test_partitions_are_the_default_partitioners() -> None:
    keys = [f"synth_2021-01:{row}".encode() for row in range(1_000)]

    expected = [(kafka_murmur2(k) & 0x7FFFFFFF) % 6 for k in keys]

    assert partitions_for_keys(keys, 6).tolist() == expected
    assert set(np.unique(partitions_for_keys(keys, 6)).tolist()) == set(range(6))
