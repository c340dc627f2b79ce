"""An indexed binary min-heap on plain numpy arrays, for numba-compiled searches.

The heap holds node ids with keys; ``pos[node]`` is the node's slot or -1. Keys can be
decreased or increased in place, so the heap never holds a node twice and never grows past
the number of nodes.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def sift_up(h_node, h_key, pos, i, node, key):
    while i > 0:
        parent = (i - 1) >> 1
        if h_key[parent] <= key:
            break
        h_node[i] = h_node[parent]
        h_key[i] = h_key[parent]
        pos[h_node[i]] = i
        i = parent
    h_node[i] = node
    h_key[i] = key
    pos[node] = i


@njit(cache=True, inline="always")
def sift_down(h_node, h_key, pos, size, i, node, key):
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and h_key[child + 1] < h_key[child]:
            child += 1
        if h_key[child] >= key:
            break
        h_node[i] = h_node[child]
        h_key[i] = h_key[child]
        pos[h_node[i]] = i
        i = child
    h_node[i] = node
    h_key[i] = key
    pos[node] = i


@njit(cache=True)
def push_or_update(h_node, h_key, pos, size, node, key):
    """Insert ``node`` with ``key`` or move it to ``key``; returns the new heap size."""
    i = pos[node]
    if i < 0:
        sift_up(h_node, h_key, pos, size, node, key)
        return size + 1
    if key < h_key[i]:
        sift_up(h_node, h_key, pos, i, node, key)
    else:
        sift_down(h_node, h_key, pos, size, i, node, key)
    return size


@njit(cache=True)
def pop_min(h_node, h_key, pos, size):
    """Remove the minimum; returns (node, key, new_size)."""
    node = h_node[0]
    key = h_key[0]
    pos[node] = -1
    size -= 1
    if size > 0:
        sift_down(h_node, h_key, pos, size, 0, h_node[size], h_key[size])
    return node, key, size


@njit(cache=True)
def clear(h_node, pos, size):
    """Empty the heap, resetting ``pos`` for the nodes still inside; returns 0."""
    for i in range(size):
        pos[h_node[i]] = -1
    return 0


def new_heap(n: int, key_dtype: type = np.int64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Allocate (h_node, h_key, pos) for ``n`` nodes."""
    return (
        np.zeros(max(n, 1), dtype=np.int32),
        np.zeros(max(n, 1), dtype=key_dtype),
        np.full(max(n, 1), -1, dtype=np.int32),
    )
