"""Kafka's default key partitioner, vectorised: the same partitions, a whole batch at once.

kafka-python hashes every key with a pure-Python murmur2 (~4 µs a key), which alone would cap
the replay well below its target. This computes the identical hash (Java's
`Utils.murmur2`, seed 0x9747b28c) with numpy on all keys of a batch, grouped by key length,
and picks `toPositive(hash) % partitions` like the Java and kafka-python default partitioners,
so a ride lands on the same partition whichever client produced it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

_SEED = np.uint32(0x9747B28C)
_M = np.uint32(0x5BD1E995)


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
    h = np.full(rows, _SEED ^ np.uint32(length), dtype=np.uint32)
    words = length // 4
    if words:
        b = data[:, : words * 4].reshape(rows, words, 4).astype(np.uint32)
        k_all = b[:, :, 0] | (b[:, :, 1] << 8) | (b[:, :, 2] << 16) | (b[:, :, 3] << 24)
        for i in range(words):
            k = k_all[:, i] * _M
            k ^= k >> np.uint32(24)
            k *= _M
            h *= _M
            h ^= k
    tail = data[:, words * 4 :].astype(np.uint32)
    extra = length % 4
    if extra >= 3:
        h ^= tail[:, 2] << 16
    if extra >= 2:
        h ^= tail[:, 1] << 8
    if extra >= 1:
        h ^= tail[:, 0]
        h *= _M
    h ^= h >> np.uint32(13)
    h *= _M
    h ^= h >> np.uint32(15)
    return h


def partitions_for_keys(keys: Sequence[bytes], partitions: int) -> np.ndarray:
    """The partition (0..partitions-1) Kafka's default partitioner gives every key."""
    return (murmur2(keys) & np.uint32(0x7FFFFFFF)) % np.uint32(partitions)
