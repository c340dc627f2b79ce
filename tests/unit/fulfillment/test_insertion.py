from __future__ import annotations

from tests.unit.fulfillment.helpers import line_matrix

from hexcity.fulfillment.domain.insertion import RouteStop, RunningRoute, best_insertion, route_times

# locations 0..4 on a line, 10 s apart; both couriers end at 0
M = line_matrix()


def courier(
    cid: str, position: int, stops: tuple[RouteStop, ...], capacity: int = 5, load: int = 0
) -> RunningRoute:
    return RunningRoute(cid, position, 100, 0, 1000, capacity, load, stops)


def test_pair_goes_where_it_adds_least_and_keeps_order() -> None:
    a = courier("a", 0, (RouteStop("s1", 4, 0, 10_000, 0),))
    b = courier("b", 0, ())
    pickup = RouteStop("p", 2, 0, 10_000, 5, 1)
    delivery = RouteStop("d", 3, 0, 10_000, 5, -1)
    best = best_insertion([b, a], pickup, delivery, M)
    assert best is not None
    # a already drives 0 -> 40 -> 0: the pair on the way adds nothing; b would add 60
    assert (best.courier_id, best.added_s) == ("a", 0)
    assert [s.id for s in best.stops] == ["p", "d", "s1"]
    assert best.etas_s == (120, 135, 150)


def test_deadlines_of_existing_stops_are_kept() -> None:
    tight = courier("a", 0, (RouteStop("s1", 1, 0, 110, 0),))
    pickup = RouteStop("p", 4, 0, 10_000, 0, 1)
    delivery = RouteStop("d", 3, 0, 10_000, 0, -1)
    best = best_insertion([tight], pickup, delivery, M)
    assert best is not None
    assert [s.id for s in best.stops] == ["s1", "p", "d"]  # s1 must stay first (due by 110)


def test_no_feasible_insertion_returns_none() -> None:
    full = courier("a", 0, (), capacity=1, load=1)
    late = RouteStop("d", 4, 0, 105, 0, -1)
    assert (
        best_insertion([full], RouteStop("p", 1, 0, 10_000, 0, 1), RouteStop("d", 2, 0, 10_000, 0, -1), M)
        is None
    )
    assert best_insertion([courier("b", 0, ())], RouteStop("p", 1, 0, 10_000, 0, 1), late, M) is None
    assert route_times(courier("c", 0, ()), (RouteStop("x", 4, 0, 10_000, 0),), M) == (140,)
