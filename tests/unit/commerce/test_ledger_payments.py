"""Checkout paid through the real payments ledger (SQLite): the merchant is paid, the books balance."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.unit.commerce.rig import make_rig, seed

from hexcity.commerce import LedgerCheckoutPayments, OrderStatus
from hexcity.infra.sql import make_engine
from hexcity.payments import PaymentService, SqlLedger, merchant_account, wallet_account


def test_a_flash_sale_order_is_paid_through_the_ledger(tmp_path: Path) -> None:
    payments = PaymentService(SqlLedger(make_engine(f"sqlite:///{tmp_path / 'ledger.db'}")))
    payments.create_schema()

    async def scenario() -> None:
        holder: dict[str, object] = {}

        def order_of(order_id: str):  # type: ignore[no-untyped-def]
            return holder["rig"].service.store.get_order(order_id)  # type: ignore[attr-defined]

        rig = await make_rig(tmp_path, payments=LedgerCheckoutPayments(payments, order_of))
        holder["rig"] = rig
        try:
            await seed(rig)
            receipt = await rig.service.purchase("sale1", "alice", 1, client_ip="10.0.0.1")
            await rig.drain()
            paid = await rig.service.pay(receipt.order_id)
            assert (paid.status, paid.payment_id) == (OrderStatus.CONFIRMED, receipt.order_id)
            again = await rig.service.pay(receipt.order_id)  # idempotent: nothing charged twice
            assert again.status is OrderStatus.CONFIRMED
        finally:
            await rig.close()
        assert payments.account(merchant_account("shop1", "EUR").id).balance_minor == 100
        wallet = payments.account(wallet_account("alice", "EUR").id)
        assert (wallet.balance_minor, wallet.available_minor) == (0, 0)  # card top-up of 100, then paid
        assert payments.ledger.total_balance()[0] == 0

    asyncio.run(asyncio.wait_for(scenario(), 30))
