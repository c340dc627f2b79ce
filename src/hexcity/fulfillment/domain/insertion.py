"""Cheapest feasible insertion of a pickup-and-delivery pair into running routes.

For an urgent order picked up at a shop or warehouse and delivered to a customer: every courier's
remaining route (from where it is now) is tried with the pickup at position i and the delivery at
position j >= i; an insertion is feasible when every later stop still starts within its window,
the courier is back before its shift ends and the load never exceeds capacity. The one that adds
the least driving time wins (ties: courier id, then positions). Solomon (1987) insertion
heuristic, the standard move for dynamic requests; O(routes x n^2) route replays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class RouteStop:
    """A stop still to be served: ``location`` indexes the matrix; ``load_delta`` is + at a pickup,
    - at a delivery (0 for a parcel already on board counted in ``RunningRoute.load``)."""

    id: str
    location: int
    tw_early: int
    tw_late: int
    service_s: int
    load_delta: int = 0


@dataclass(frozen=True, slots=True)
class RunningRoute:
    courier_id: str
    position: int  # matrix index of where the courier is (or will be free)
    free_at_s: int
    end: int  # matrix index of where it ends its shift
    shift_end_s: int
    capacity: int
    load: int  # on board now
    stops: tuple[RouteStop, ...]


@dataclass(frozen=True, slots=True)
class Insertion:
    courier_id: str
    pickup_position: int
    delivery_position: int
    added_s: int
    stops: tuple[RouteStop, ...]
    etas_s: tuple[int, ...]  # service start per stop of the new sequence


def route_times(
    route: RunningRoute, stops: tuple[RouteStop, ...], durations_s: I64
) -> tuple[int, ...] | None:
    """Service start per stop, or None when a window, the shift end or the capacity breaks."""
    time = route.free_at_s
    here = route.position
    load = route.load
    starts: list[int] = []
    for stop in stops:
        time = max(time + int(durations_s[here, stop.location]), stop.tw_early)
        if time > stop.tw_late:
            return None
        load += stop.load_delta
        if load > route.capacity or load < 0:
            return None
        starts.append(time)
        time += stop.service_s
        here = stop.location
    if time + int(durations_s[here, route.end]) > route.shift_end_s:
        return None
    return tuple(starts)


def drive_s(route: RunningRoute, stops: tuple[RouteStop, ...], durations_s: I64) -> int:
    here = route.position
    total = 0
    for stop in stops:
        total += int(durations_s[here, stop.location])
        here = stop.location
    return total + int(durations_s[here, route.end])


def best_insertion(
    routes: list[RunningRoute], pickup: RouteStop, delivery: RouteStop, durations_s: I64
) -> Insertion | None:
    """The cheapest feasible insertion of the pair (pickup before delivery), or None."""
    best: Insertion | None = None
    for route in sorted(routes, key=lambda r: r.courier_id):
        base = drive_s(route, route.stops, durations_s)
        n = len(route.stops)
        for i in range(n + 1):
            with_pickup = (*route.stops[:i], pickup, *route.stops[i:])
            for j in range(i + 1, n + 2):
                candidate = (*with_pickup[:j], delivery, *with_pickup[j:])
                etas = route_times(route, candidate, durations_s)
                if etas is None:
                    continue
                added = drive_s(route, candidate, durations_s) - base
                key = (added, route.courier_id, i, j)
                if best is None or key < (
                    best.added_s,
                    best.courier_id,
                    best.pickup_position,
                    best.delivery_position,
                ):
                    best = Insertion(route.courier_id, i, j, added, candidate, etas)
    return best
