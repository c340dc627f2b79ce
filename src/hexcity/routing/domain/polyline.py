"""Google's encoded polyline format (precision 5 or 6), as OSRM emits and accepts it."""

from __future__ import annotations

from collections.abc import Iterable

from hexcity.kernel import LatLng


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
