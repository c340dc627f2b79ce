"""Ride payments through the payments module's ride saga (fare authorised at match, captured at
completion with the platform fee split off, voided on cancel).

The rider pays from the wallet; when the wallet does not hold the fare, the shortfall is charged
to the rider's card on file first (a wallet top-up from external settlement, idempotent per trip),
so a ride is never refused for an empty wallet. Every call is idempotent per trip id, so a retry
after a crash does not charge twice.
"""

from __future__ import annotations

from hexcity.dispatch.domain.trips import Trip
from hexcity.kernel import HexcityError
from hexcity.payments import PaymentService, TopUp, driver_account, wallet_account

__all__ = ["LedgerTripPayments"]


class LedgerTripPayments:
    """:class:`~hexcity.dispatch.service.TripPayments` on the double-entry ledger."""

    def __init__(self, payments: PaymentService) -> None:
        self.payments = payments

    def authorize(self, trip: Trip) -> None:
        if trip.driver_id is None:
            raise ValueError("a fare is authorised only once a driver is assigned")
        wallet = wallet_account(trip.rider_id, trip.currency)
        self.payments.open_accounts([wallet, driver_account(trip.driver_id, trip.currency)])
        available = self.payments.account(wallet.id).available_minor
        if available < trip.fare_cents:
            self.payments.execute(
                TopUp(
                    wallet.id, trip.fare_cents - available, trip.currency, f"card on file for {trip.trip_id}"
                ),
                idempotency_key=f"ride-card:{trip.trip_id}",
                scope="dispatch",
            )
        self.payments.rides.authorize_fare(
            trip.trip_id, trip.rider_id, trip.driver_id, trip.fare_cents, trip.currency
        )

    def capture(self, trip: Trip) -> None:
        self.payments.rides.complete(trip.trip_id, trip.fare_cents)

    def void(self, trip: Trip) -> None:
        try:
            self.payments.rides.cancel(trip.trip_id)
        except HexcityError as exc:
            if exc.status != 404:  # nothing was authorised (cancelled before a driver): nothing to void
                raise
