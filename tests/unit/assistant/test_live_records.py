"""Live records from the real module stores (SQLite): fulfillment orders, dispatch trips, payments.

Rider A (``rider-a``) has an order, a completed trip with driver D (``drv-d``), the ride fare
payment and a partial refund of it, plus a card payment for the order; rider B (``rider-b``) has a
completed trip with the same driver D. Every assertion names exact ids: A's answers, searches and
graph paths reach A's trip, D, A's payments and refund — never B's trip, directly or through D.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from hexcity.assistant import (
    AssistantService,
    HashedNgramEmbedder,
    PlatformRecord,
    Viewer,
    load_shipped_articles,
)
from hexcity.assistant.adapters.composite_records import CompositeRecordReader
from hexcity.assistant.adapters.payment_records import record_from_payment, wallet_owner
from hexcity.assistant.adapters.trip_records import record_from_trip
from hexcity.assistant.errors import RecordNotFound
from hexcity.assistant.wiring import build_record_reader
from hexcity.dispatch import SqlTripStore, TripQueries
from hexcity.dispatch.adapters.trip_store_sql import StoredQuote
from hexcity.dispatch.domain.trips import Actor, TripStatus
from hexcity.fulfillment import Allocation, Lane, Order, SqlAllocationStore, Warehouse
from hexcity.fulfillment.domain.allocation import Option, Package
from hexcity.infra.sql import make_engine
from hexcity.kernel import LatLng
from hexcity.payments import (
    CustomerPayments,
    Pay,
    PaymentService,
    PaymentsSettings,
    Refund,
    SqlLedger,
    TopUp,
    driver_account,
    merchant_account,
    wallet_account,
)

A, B, D = "rider-a", "rider-b", "drv-d"
ALICE_VIEW, BOB_VIEW = Viewer(A, "customer"), Viewer(B, "customer")
T0 = 1_764_150_000.0  # 2025-11-26T09:40:00Z
PICKUP, DROPOFF = LatLng(49.4093, 8.6937), LatLng(49.3988, 8.6724)
TRIP_A, TRIP_B, ORDER_A = "t-a1", "t-b1", "ord-a1"
RIDE_A, RIDE_B = f"ride:{TRIP_A}", f"ride:{TRIP_B}"


class Clock:
    def __init__(self) -> None:
        self.now_s = T0

    def __call__(self) -> float:
        return self.now_s


@dataclass
class World:
    engine: Engine
    trips: SqlTripStore
    payments: PaymentService
    fulfillment: SqlAllocationStore
    clock: Clock
    card_payment_id: str = ""
    refund_id: str = ""

    def reader(self) -> CompositeRecordReader:
        reader = build_record_reader(
            fulfillment_store=self.fulfillment,
            trips=TripQueries(self.engine),
            payments=CustomerPayments(self.engine),
        )
        assert isinstance(reader, CompositeRecordReader)
        return reader

    def service(self) -> AssistantService:
        return AssistantService(load_shipped_articles(), HashedNgramEmbedder(), records=self.reader())


def request_trip(
    world: World, trip_id: str, rider: str, fare_cents: int, multiplier: str, at_s: float
) -> None:
    world.trips.save_quote(
        StoredQuote(
            f"q-{trip_id}", rider, "standard", PICKUP, DROPOFF, fare_cents, "EUR", multiplier, "cell",
            2000.0, 300.0, at_s, at_s + 60,
        )
    )  # fmt: skip
    world.trips.create_trip(trip_id, f"q-{trip_id}", rider, at_s)


def drive(world: World, trip_id: str, rider: str, at_s: float, *, to: TripStatus) -> None:
    """Offer to D, accept, authorise the fare, pick up; then complete (+ capture) if asked."""
    assert world.trips.create_offer(f"o-{trip_id}", trip_id, D, 120.0, at_s, 15.0) is not None
    trip = world.trips.accept_offer(f"o-{trip_id}", D, at_s + 1)
    world.clock.now_s = at_s + 1
    world.payments.rides.authorize_fare(trip_id, rider, D, trip.fare_cents, "EUR")
    world.trips.transition(trip_id, TripStatus.IN_TRIP, Actor.DRIVER, D, at_s + 60)
    if to is TripStatus.COMPLETED:
        complete(world, trip_id, at_s + 600)


def complete(world: World, trip_id: str, at_s: float) -> None:
    trip = world.trips.transition(trip_id, TripStatus.COMPLETED, Actor.DRIVER, D, at_s)
    world.clock.now_s = at_s
    world.payments.rides.complete(trip_id, trip.fare_cents)


def refund(world: World, payment_id: str, amount_minor: int, at_s: float) -> str:
    world.clock.now_s = at_s
    response = world.payments.execute(
        Refund(payment_id, amount_minor, "driver took a detour"),
        idempotency_key=f"rf-{payment_id}",
        scope="t",
    )
    return str(response.body["id"])


def build_world(tmp_path: Path, *, complete_trip_a: bool = True) -> World:
    return build_world_on(
        make_engine(f"sqlite:///{tmp_path / 'platform.db'}"), complete_trip_a=complete_trip_a
    )


def build_world_on(engine: Engine, *, complete_trip_a: bool = True) -> World:
    """A and B's data in the real stores of dispatch, payments and fulfillment on ``engine``."""
    clock = Clock()
    trips = SqlTripStore(engine)
    trips.create_schema()
    payments = PaymentService(SqlLedger(engine, clock=clock), PaymentsSettings(), clock=clock)
    payments.create_schema()
    payments.open_accounts(
        [
            wallet_account(A, "EUR"),
            wallet_account(B, "EUR"),
            driver_account(D, "EUR"),
            merchant_account("s1", "EUR"),
        ]
    )
    for rider in (A, B):
        payments.execute(
            TopUp(wallet_account(rider, "EUR").id, 10_000, "EUR"), idempotency_key=rider, scope="t"
        )
    fulfillment = SqlAllocationStore(engine)
    fulfillment.create_schema()
    fulfillment.put_warehouse(Warehouse("W-NORD", LatLng(49.42, 8.68)))
    fulfillment.set_on_hand("W-NORD", "kettle", 3, "receipt")
    order = Order.create(ORDER_A, [("kettle", 1)], LatLng(49.41, 8.69), "standard")
    option = Option("single", (Package("W-NORD", (("kettle", 1),), 300, 100),))
    fulfillment.save_allocation(order, Allocation(ORDER_A, option, ["one warehouse has everything"]), {
        "W-NORD": Lane(2500.0, 400.0)
    })  # fmt: skip
    fulfillment.link_customer(ORDER_A, A)
    world = World(engine, trips, payments, fulfillment, clock)
    clock.now_s = T0 - 100
    card = payments.execute(
        Pay(wallet_account(A, "EUR").id, merchant_account("s1", "EUR").id, 2599, "EUR", reference=ORDER_A),
        idempotency_key="card-a",
        scope="t",
    )
    world.card_payment_id = str(card.body["id"])
    request_trip(world, TRIP_A, A, 1840, "1.35", T0)
    drive(world, TRIP_A, A, T0, to=TripStatus.COMPLETED if complete_trip_a else TripStatus.IN_TRIP)
    if complete_trip_a:
        world.refund_id = refund(world, RIDE_A, 500, T0 + 700)
    request_trip(world, TRIP_B, B, 2210, "1.00", T0 + 1000)
    if complete_trip_a:  # D drives B only once A's trip is over (one trip per driver)
        drive(world, TRIP_B, B, T0 + 1000, to=TripStatus.COMPLETED)
    return world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    built = build_world(tmp_path)
    yield built
    built.engine.dispose()


def kinds_ids(records: list[PlatformRecord] | tuple[PlatformRecord, ...]) -> list[tuple[str, str]]:
    return [(r.kind, r.record_id) for r in records]


def test_composite_reader_merges_the_modules_in_a_fixed_order(world: World) -> None:
    check_reader(world)


def check_reader(world: World) -> None:
    records = list(world.reader().records_for(A, limit=200))
    assert kinds_ids(records) == [
        ("order", ORDER_A),
        ("shipment", f"{ORDER_A}-P1"),
        ("trip", TRIP_A),
        ("refund", world.refund_id),
        ("payment", RIDE_A),
        ("payment", world.card_payment_id),
    ]
    trip = records[2]
    assert trip.attrs == {
        "status": "completed",
        "product": "standard",
        "pickup": "49.40930,8.69370",
        "dropoff": "49.39880,8.67240",
        "fare": "18.40 EUR",
        "surge": "1.35x",
        "requested_at": "2025-11-26T09:40:00Z",
        "updated_at": "2025-11-26T09:50:00Z",
        "version": "5",
        "driver": D,
    }
    assert trip.links == (("DRIVEN_BY", "driver", D, D),)
    assert records[3].attrs == {
        "status": "succeeded",
        "amount": "5.00 EUR",
        "created_at": "2025-11-26T09:51:40Z",
        "reason": "driver took a detour",
        "refunds": RIDE_A,
    }
    assert records[3].links == (("REFUNDS", "payment", RIDE_A, ""),)
    assert records[4].attrs["status"] == "partially_refunded"
    assert records[4].attrs["refunded"] == "5.00 EUR"
    assert records[4].links == (("PAID_FOR", "trip", TRIP_A, ""),)
    # a plain payment's reference links only because the order is A's own (read first)
    assert records[5].links == (("PAID_FOR", "order", ORDER_A, ""),)
    assert all(r.customer_id == A for r in records)
    assert kinds_ids(list(world.reader().records_for(B, limit=200))) == [
        ("trip", TRIP_B),
        ("payment", RIDE_B),
    ]
    # bounded: per source, then in all
    assert kinds_ids(list(world.reader().records_for(A, limit=3))) == [
        ("order", ORDER_A),
        ("shipment", f"{ORDER_A}-P1"),
        ("trip", TRIP_A),
    ]


def test_plain_payment_reference_to_another_customers_order_plants_no_link(world: World) -> None:
    payment = world.payments.payment(world.card_payment_id).to_json()
    mallory = record_from_payment({**payment, "reference": ORDER_A}, "mallory", own=frozenset())
    assert mallory is not None
    assert mallory.links == ()
    assert mallory.attrs["reference"] == ORDER_A
    assert wallet_owner(wallet_account(A, "EUR").id) == A
    assert wallet_owner("driver:drv-d:EUR") is None
    assert wallet_owner("wallet:x") is None


def test_answer_reaches_own_trip_driver_payment_and_refund_never_the_other_riders_trip(world: World) -> None:
    check_answers(world)


def check_answers(world: World) -> None:
    service = world.service()
    result = service.answer("who drove my trip and what did I pay for the ride?", ALICE_VIEW)
    reached = set(result.answer.records)
    assert {f"trip:{TRIP_A}", f"driver:{D}", f"payment:{RIDE_A}", f"refund:{world.refund_id}"} <= reached
    assert f"trip:{TRIP_B}" not in reached and f"payment:{RIDE_B}" not in reached
    # the answer names who drove (the question's first half) and what the payment was for
    assert f"Trip {TRIP_A}: completed, fare 18.40 EUR (surge 1.35x), driven by {D}" in result.answer.facts
    assert f"Payment {RIDE_A}: partially_refunded, amount 18.40 EUR, for trip {TRIP_A}" in result.answer.facts
    assert f"Refund {world.refund_id}: succeeded, amount 5.00 EUR" in result.answer.facts
    assert TRIP_B not in result.answer.text and "22.10" not in result.answer.text
    bob = service.answer("who drove my trip and what did I pay?", BOB_VIEW).answer
    assert f"trip:{TRIP_B}" in bob.records and f"driver:{D}" in bob.records
    assert not {f"trip:{TRIP_A}", f"payment:{RIDE_A}", f"refund:{world.refund_id}"} & set(bob.records)


def test_graph_paths_through_the_shared_driver_stay_with_the_asker(world: World) -> None:
    service = world.service()
    service.answer("my trips", ALICE_VIEW)  # reads A's records into the graph
    service.answer("my trips", BOB_VIEW)  # and B's: D now has an edge to each rider's trip
    driver_edges = {(e.source, e.relation) for e in service.graph.edges.values() if e.target == f"driver:{D}"}
    assert driver_edges == {(f"trip:{TRIP_A}", "DRIVEN_BY"), (f"trip:{TRIP_B}", "DRIVEN_BY")}
    from_a = service.graph.local_search(ALICE_VIEW, [f"customer:{A}"], hops=4, max_nodes=500)
    assert set(from_a.hops) >= {f"customer:{A}", f"trip:{TRIP_A}", f"driver:{D}", f"payment:{RIDE_A}"}
    assert f"trip:{TRIP_B}" not in from_a.hops and f"customer:{B}" not in from_a.hops
    from_driver = service.graph.local_search(ALICE_VIEW, [f"driver:{D}"], hops=4, max_nodes=500)
    assert from_driver.hops[f"trip:{TRIP_A}"] == 1  # back to her own trip only: each trip→driver
    assert f"trip:{TRIP_B}" not in from_driver.hops  # edge is owned by that trip's rider
    assert f"payment:{RIDE_B}" not in from_driver.hops and f"customer:{B}" not in from_driver.hops
    assert [e.source for e in service.graph.visible_edges(f"driver:{D}", ALICE_VIEW)] == [f"trip:{TRIP_A}"]
    assert [e.source for e in service.graph.visible_edges(f"driver:{D}", BOB_VIEW)] == [f"trip:{TRIP_B}"]
    for edge in from_a.edges:  # every edge and node on A's paths is A's or public
        assert edge.access.owners in (frozenset(), frozenset({A}))
        for end in (edge.source, edge.target):
            assert service.graph.nodes[end].access.owners in (frozenset(), frozenset({A}))
    assert service.graph.nodes[f"driver:{D}"].attrs == {}  # only the id: no location, no trips


def test_own_record_of_another_rider_is_not_found(world: World) -> None:
    service = world.service()
    node, linked = service.own_record(ALICE_VIEW, "trip", TRIP_A)
    assert node.attrs["driver"] == D
    assert sorted(n.node_id for n in linked) == [f"driver:{D}", f"payment:{RIDE_A}"]
    with pytest.raises(RecordNotFound):
        service.own_record(ALICE_VIEW, "trip", TRIP_B)
    with pytest.raises(RecordNotFound):
        service.own_record(BOB_VIEW, "refund", world.refund_id)


def test_search_never_returns_records_and_the_trip_question_is_grounded(world: World) -> None:
    service = world.service()
    hits = service.search("surge multiplier on my trip fare", ALICE_VIEW, k=3)
    assert hits[0].chunk.doc_id == "surge-pricing"
    assert all(TRIP_A not in hit.chunk.text and TRIP_B not in hit.chunk.text for hit in hits)


def test_trip_record_from_the_ride_status_payload_equals_the_stored_one(world: World) -> None:
    stored = world.trips.get_trip(TRIP_A)
    assert record_from_trip(stored.public()) == list(world.reader().records_for(A, limit=200))[2]
    unassigned = record_from_trip(
        {**stored.public(), "driver_id": None, "cancel_reason": "rider changed plans"}
    )
    assert unassigned.links == ()
    assert "driver" not in unassigned.attrs
    assert unassigned.attrs["cancel_reason"] == "rider changed plans"


class BrokenReader:
    def records_for(self, customer_id: str, *, limit: int) -> list[PlatformRecord]:
        raise OperationalError("SELECT", {}, Exception("no such table: dispatch_trips"))


class LeakyReader:
    """A buggy reader returning another customer's record alongside the asker's."""

    def records_for(self, customer_id: str, *, limit: int) -> list[PlatformRecord]:
        return [PlatformRecord("trip", "t-x", "someone-else"), PlatformRecord("trip", "t-own", customer_id)]


def test_composite_skips_a_failing_reader_and_drops_other_customers_records(world: World) -> None:
    reader = CompositeRecordReader([BrokenReader(), LeakyReader()], per_source=5)
    assert kinds_ids(list(reader.records_for(A, limit=10))) == [("trip", "t-own")]
    assert reader.records_for(A, limit=0) == []
    with pytest.raises(ValueError, match="per_source"):
        CompositeRecordReader([], per_source=0)
    assert build_record_reader() is None
    only_trips = build_record_reader(trips=TripQueries(world.engine))
    assert only_trips is not None
    assert kinds_ids(list(only_trips.records_for(B, limit=5))) == [("trip", TRIP_B)]
