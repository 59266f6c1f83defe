"""The producer fast path: records appended straight to kafka-python's accumulator, on the
partitions a numpy murmur2 gives their keys.

It uses private kafka-python internals (`_accumulator`, its `_tp_lock` and `_batches`,
`ProducerBatch.try_append`, `_sender.wakeup`), so it is tied to the one version it was checked
against: pyproject.toml pins kafka-python to exactly `CHECKED_KAFKA_PYTHON` (the choice is a
pin, not a test matrix over a range). On any other version `appends_directly` logs a warning
once and says no, and every message goes through `KafkaProducer.send` (correct, ~1.5x slower
to produce). Before moving the pin, read the new version's `RecordAccumulator.append` and
`ProducerBatch.try_append`, run tests/integration/shared/test_stream_loop.py and
bench/producer_replay.py, then change `CHECKED_KAFKA_PYTHON` with the pin.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import kafka
import numpy as np
from kafka import TopicPartition

log = logging.getLogger(__name__)

# The kafka-python release whose internals append_records was read against and tested with
# (pinned with == in pyproject.toml).
CHECKED_KAFKA_PYTHON = "3.0.12"


def appends_directly(producer: Any) -> bool:
    """Whether `append_records` can feed this producer: kafka-python is the checked version,
    its accumulator (with its partition queues and locks), batches and sender are there and
    keys go to partitions by the default partitioner (murmur2). Otherwise `send` is used."""
    from kafka.partitioner.default import DefaultPartitioner
    from kafka.producer.producer_batch import ProducerBatch

    if not _is_checked_version(kafka.__version__):
        return False
    accumulator = getattr(producer, "_accumulator", None)
    config = getattr(producer, "config", None)
    return (
        all(hasattr(accumulator, name) for name in ("append", "_tp_lock", "_batches"))
        and hasattr(ProducerBatch, "try_append")
        and hasattr(getattr(producer, "_sender", None), "wakeup")
        and isinstance(config, dict)
        and type(config.get("partitioner")) is DefaultPartitioner
        and not getattr(producer, "_closed", True)
    )


@functools.cache
def _is_checked_version(version: str) -> bool:
    """True for the checked version; on another, one loud warning (this runs per batch)."""
    if version == CHECKED_KAFKA_PYTHON:
        return True
    log.warning(
        "kafka-python %s is installed, but the producer fast path was checked against %s "
        "only: every message goes through KafkaProducer.send (correct, about 1.5x slower). "
        "Install kafka-python==%s (pyproject.toml) or check the fast path against %s.",
        version,
        CHECKED_KAFKA_PYTHON,
        CHECKED_KAFKA_PYTHON,
        version,
    )
    return False


def append_records(
    producer: Any,
    tps: Sequence[TopicPartition | None],
    keys: Sequence[bytes | None],
    values: Sequence[bytes],
) -> list[Any]:
    """Append records straight to the producer's record accumulator; returns their futures.

    `KafkaProducer.send` re-checks, per message, what a batch settles once: metadata, the
    partition (a pure-Python murmur2, ~4 us a key), headers, size, and it formats a debug line
    even with debug logging off. Skipping that makes producing ~1.5x faster (see bench/). The
    caller has picked the partitions (`partitions_for_keys`) and the sizes; in a transaction
    each partition is added to it first, as `send` does. The sender is woken when a batch is
    started and once at the end if one is full, as `send` does (not once per message:
    a wake-up is a syscall).

    Per partition, in order: the accumulator takes a message (it finds the partition's open
    batch or starts one), then the following ones go into that batch directly, under the
    partition lock the accumulator and the sender take (a batch the sender drained or aborted
    has left the partition's queue, a closed one takes nothing), until it is full. That skips
    the accumulator's per-message checks and locks: ~1.5 us of the predictor's ~31 us a ride.
    """
    accumulator = producer._accumulator
    append = accumulator.append
    wakeup = producer._sender.wakeup
    manager = getattr(producer, "_transaction_manager", None)
    if manager is not None and manager.is_transactional():
        for tp in dict.fromkeys(tps):
            manager.maybe_add_partition_to_transaction(tp)
    by_partition: dict[Any, list[int]] = {}
    for index, tp in enumerate(tps):
        by_partition.setdefault(tp, []).append(index)
    futures: list[Any] = [None] * len(tps)
    full = False
    for tp, indexes in by_partition.items():
        lock = accumulator._tp_lock(tp)
        position = 0
        while position < len(indexes):
            index = indexes[position]
            futures[index], full_now, new_batch, _ = append(
                tp, None, keys[index], values[index], []
            )
            full = full or full_now
            if new_batch:
                wakeup()
            position += 1
            with lock:
                queue = accumulator._batches[tp]
                batch = queue[-1] if queue else None
                while batch is not None and position < len(indexes):
                    index = indexes[position]
                    future = batch.try_append(None, keys[index], values[index], [])
                    if future is None:  # full: the accumulator starts the next batch
                        full = True
                        break
                    futures[index] = future
                    position += 1
    if full:
        wakeup()
    return futures


# Kafka's default key partitioner, vectorised. kafka-python hashes every key with a pure-Python
# murmur2 (~4 us a key); this computes the identical hash (Java's `Utils.murmur2`, seed
# 0x9747b28c) with numpy on all keys of a batch, grouped by key length, and picks
# `toPositive(hash) % partitions` like the Java and kafka-python default partitioners, so a
# key lands on the same partition whichever client produced it.
_MURMUR2_SEED = np.uint32(0x9747B28C)
_MURMUR2_M = np.uint32(0x5BD1E995)


def murmur2(keys: Sequence[bytes]) -> np.ndarray:
    """The murmur2 hash (uint32) of every key, as Kafka computes it."""
    hashes = np.empty(len(keys), dtype=np.uint32)
    by_length: dict[int, list[int]] = defaultdict(list)
    for index, key in enumerate(keys):
        by_length[len(key)].append(index)
    for length, indexes in by_length.items():
        data = np.frombuffer(b"".join(keys[i] for i in indexes), dtype=np.uint8)
        hashes[indexes] = _murmur2_same_length(data.reshape(len(indexes), length))
    return hashes


def _murmur2_same_length(data: np.ndarray) -> np.ndarray:
    rows, length = data.shape
    h = np.full(rows, _MURMUR2_SEED ^ np.uint32(length), dtype=np.uint32)
    words = length // 4
    if words:
        b = data[:, : words * 4].reshape(rows, words, 4).astype(np.uint32)
        k_all = b[:, :, 0] | (b[:, :, 1] << 8) | (b[:, :, 2] << 16) | (b[:, :, 3] << 24)
        for i in range(words):
            k = k_all[:, i] * _MURMUR2_M
            k ^= k >> np.uint32(24)
            k *= _MURMUR2_M
            h *= _MURMUR2_M
            h ^= k
    tail = data[:, words * 4 :].astype(np.uint32)
    extra = length % 4
    if extra >= 3:
        h ^= tail[:, 2] << 16
    if extra >= 2:
        h ^= tail[:, 1] << 8
    if extra >= 1:
        h ^= tail[:, 0]
        h *= _MURMUR2_M
    h ^= h >> np.uint32(13)
    h *= _MURMUR2_M
    h ^= h >> np.uint32(15)
    return h


def partitions_for_keys(keys: Sequence[bytes], partitions: int) -> np.ndarray:
    """The partition (0..partitions-1) Kafka's default partitioner gives every key."""
    return (murmur2(keys) & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)
