"""Who an order is for: linked once, listed per customer (the support assistant reads it)."""

from __future__ import annotations

from pathlib import Path

from hexcity.fulfillment import SqlAllocationStore
from hexcity.infra.sql import make_engine


def test_orders_are_linked_to_their_customer_once(tmp_path: Path) -> None:
    store = SqlAllocationStore(make_engine(f"sqlite:///{tmp_path / 'f.db'}"))
    store.create_schema()
    store.link_customer("o-1", "alice")
    store.link_customer("o-2", "alice")
    store.link_customer("o-3", "bob")
    store.link_customer("o-1", "mallory")  # the first customer stays
    assert store.orders_of_customer("alice") == ["o-2", "o-1"]
    assert store.orders_of_customer("bob") == ["o-3"]
    assert store.orders_of_customer("mallory") == []
    assert store.orders_of_customer("alice", limit=1) == ["o-2"]
