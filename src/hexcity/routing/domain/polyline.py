"""Google's encoded polyline format (precision 5 or 6), as OSRM emits and accepts it."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt
from numba import njit

from hexcity.kernel import LatLng


def encode_array(lat_lng: npt.NDArray[np.float64], precision: int = 5) -> str:
    """Encode an ``(n, 2)`` array of (lat, lng) rows; the fast path for route geometries."""
    scaled = np.round(np.asarray(lat_lng, dtype=np.float64).reshape(-1, 2) * 10.0**precision).astype(np.int64)
    out = np.empty(scaled.size * 12 + 1, dtype=np.uint8)
    n = _encode_kernel(scaled, out)
    return out[:n].tobytes().decode("ascii")


@njit(cache=True, nogil=True)
def _encode_kernel(scaled, out):  # type: ignore[no-untyped-def]
    k = 0
    prev0 = 0
    prev1 = 0
    for i in range(scaled.shape[0]):
        for j in range(2):
            v = scaled[i, j]
            delta = v - (prev0 if j == 0 else prev1)
            value = ~(delta << 1) if delta < 0 else delta << 1
            while value >= 0x20:
                out[k] = (0x20 | (value & 0x1F)) + 63
                k += 1
                value >>= 5
            out[k] = value + 63
            k += 1
        prev0 = scaled[i, 0]
        prev1 = scaled[i, 1]
    return k


def encode(points: Iterable[LatLng], precision: int = 5) -> str:
    """Encode points (lat first in the format, as Google's algorithm defines it)."""
    factor = 10**precision
    out: list[str] = []
    prev_lat = prev_lng = 0
    for p in points:
        lat, lng = round(p.lat * factor), round(p.lng * factor)
        for delta in (lat - prev_lat, lng - prev_lng):
            value = ~(delta << 1) if delta < 0 else delta << 1
            while value >= 0x20:
                out.append(chr((0x20 | (value & 0x1F)) + 63))
                value >>= 5
            out.append(chr(value + 63))
        prev_lat, prev_lng = lat, lng
    return "".join(out)


def decode(text: str, precision: int = 5) -> list[LatLng]:
    """Decode an encoded polyline; raises ValueError on malformed input."""
    factor = 10**precision
    points: list[LatLng] = []
    index = lat = lng = 0
    length = len(text)
    while index < length:
        deltas = []
        for _ in range(2):
            shift = result = 0
            while True:
                if index >= length:
                    raise ValueError("truncated polyline")
                b = ord(text[index]) - 63
                index += 1
                if not 0 <= b < 64:
                    raise ValueError("invalid polyline character")
                result |= (b & 0x1F) << shift
                shift += 5
                if b < 0x20:
                    break
            deltas.append(~(result >> 1) if result & 1 else result >> 1)
        lat += deltas[0]
        lng += deltas[1]
        points.append(LatLng(lat / factor, lng / factor))
    return points
