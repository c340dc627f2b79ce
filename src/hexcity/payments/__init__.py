"""Payments: wallets on a double-entry ledger, idempotent payments, outbox, sagas, campaigns (issue 7).

Other modules may import only from here. See ``docs/payments.md``.
"""

from hexcity.payments.adapters.customer_payments import CustomerPayments
from hexcity.payments.adapters.records import Payment
from hexcity.payments.adapters.sql_ledger import SqlLedger
from hexcity.payments.campaigns import Campaign, Campaigns, Grant, cashback_handler
from hexcity.payments.domain.accounts import (
    campaign_budget_account,
    driver_account,
    external_settlement_account,
    merchant_account,
    platform_revenue_account,
    wallet_account,
)
from hexcity.payments.domain.batch import TransferResult
from hexcity.payments.domain.commands import Pay, Payout, Refund, TopUp
from hexcity.payments.domain.ledger import (
    Account,
    AccountKind,
    AccountState,
    Entry,
    Overdraft,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferStatus,
)
from hexcity.payments.domain.reconciliation import Discrepancy, ReconciliationReport, Record
from hexcity.payments.domain.retry import RetryPolicy
from hexcity.payments.errors import (
    AccountNotFound,
    CurrencyMismatch,
    IdempotencyKeyReuse,
    InsufficientFunds,
    InvalidAmount,
    LedgerBusy,
    PaymentsError,
    TransferExists,
)
from hexcity.payments.http import build_payments_router
from hexcity.payments.sagas import OrderOutcome, OrderPayments, RidePayments, StockReservation
from hexcity.payments.service import ApiResponse, PaymentService
from hexcity.payments.settings import PaymentsSettings
from hexcity.payments.worker import PaymentsWorker

__all__ = [
    "Account",
    "AccountKind",
    "AccountNotFound",
    "AccountState",
    "ApiResponse",
    "Campaign",
    "Campaigns",
    "CurrencyMismatch",
    "CustomerPayments",
    "Discrepancy",
    "Entry",
    "Grant",
    "IdempotencyKeyReuse",
    "InsufficientFunds",
    "InvalidAmount",
    "LedgerBusy",
    "OrderOutcome",
    "OrderPayments",
    "Overdraft",
    "Pay",
    "Payment",
    "PaymentService",
    "PaymentsError",
    "PaymentsSettings",
    "PaymentsWorker",
    "Payout",
    "ReconciliationReport",
    "Record",
    "Refund",
    "RetryPolicy",
    "RidePayments",
    "SqlLedger",
    "StockReservation",
    "TopUp",
    "Transfer",
    "TransferExists",
    "TransferKind",
    "TransferRequest",
    "TransferResult",
    "TransferStatus",
    "build_payments_router",
    "campaign_budget_account",
    "cashback_handler",
    "driver_account",
    "external_settlement_account",
    "merchant_account",
    "platform_revenue_account",
    "wallet_account",
]
