"""Account naming: one id scheme for wallets, merchants, drivers and the platform's own accounts."""

from __future__ import annotations

from hexcity.payments.domain.ledger import Account, AccountKind, Overdraft, check_currency, check_id


def wallet_account(rider_id: str, currency: str) -> Account:
    """A rider's (customer's) wallet: no overdraft, owned by the rider."""
    return _owned("wallet", AccountKind.WALLET, "rider", rider_id, currency)


def merchant_account(shop_id: str, currency: str) -> Account:
    """A shop's merchant account, owned by the shop (the merchant's tenant)."""
    return _owned("merchant", AccountKind.MERCHANT, "shop", shop_id, currency)


def driver_account(driver_id: str, currency: str) -> Account:
    """A driver's earnings account, owned by the driver."""
    return _owned("driver", AccountKind.DRIVER_EARNINGS, "driver", driver_id, currency)


def platform_revenue_account(currency: str) -> Account:
    return Account(f"platform:revenue:{check_currency(currency)}", AccountKind.PLATFORM_REVENUE, currency)


def external_settlement_account(currency: str) -> Account:
    """The outside world (banks, card networks): the only accounts that may go negative."""
    return Account(
        f"external:settlement:{check_currency(currency)}",
        AccountKind.EXTERNAL_SETTLEMENT,
        currency,
        Overdraft.UNBOUNDED,
    )


def campaign_budget_account(campaign_id: str, currency: str) -> Account:
    """A campaign's budget: no overdraft, so grants can never pass it."""
    return Account(check_id(f"campaign:{campaign_id}", "campaign id"), AccountKind.CAMPAIGN_BUDGET, currency)


def system_accounts(currency: str) -> list[Account]:
    return [platform_revenue_account(currency), external_settlement_account(currency)]


def _owned(prefix: str, kind: AccountKind, owner_kind: str, owner_id: str, currency: str) -> Account:
    check_currency(currency)
    account_id = check_id(f"{prefix}:{check_id(owner_id, 'owner id')}:{currency}", f"{prefix} account id")
    return Account(account_id, kind, currency, owner_kind=owner_kind, owner_id=owner_id).validate()
