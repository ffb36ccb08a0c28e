"""Throttles that follow the attacker, not the address: password guesses counted per account (whatever the
address), per address (whatever the account) and across the whole site, and sign-ups per address.

The counters are the `limits` library's moving windows: in this process's memory in embedded mode, in Redis
when REELGATE_REDIS_URL is set, so every API process counts the same guesses. Limits are lists in `limits`
notation ("5/minute;10/15 minutes"): the tiers make the wait grow with the number of failures.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse_many

from reelgate.domain.errors import RateLimited
from reelgate.services.rate_window import CounterStore


class Throttle:
    def __init__(
        self,
        counters: CounterStore,
        *,
        per_account: str = "5/minute;10/15 minutes;20/hour;50/day",
        per_address: str = "30/10 minutes;200/day",
        global_failures: str = "1000/10 minutes",
        signups_per_address: str = "5/hour;20/day",
        signup_credits_per_address: str = "3/day",
    ) -> None:
        self.limiter = counters.limiter()
        self.per_account = parse_many(per_account)
        self.per_address = parse_many(per_address)
        self.global_failures = parse_many(global_failures)
        self.signups_per_address = parse_many(signups_per_address)
        self.signup_credits_per_address = parse_many(signup_credits_per_address)

    async def _wait(self, item: RateLimitItem, *identity: str) -> int:
        stats = await self.limiter.get_window_stats(item, "reelgate", *identity)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def password_attempt(self, *, account: str, address: str) -> None:
        """Before a password is checked (sign-in, or the current password before a sensitive change): raises
        RateLimited when the site, the address or the account has had too many failures lately.

        The account's counters are charged before the check, so concurrent guesses cannot all slip through
        one remaining attempt; `password_ok` clears them again for the account's owner."""
        account = account.strip().lower()
        for item in self.global_failures:
            if not await self.limiter.test(item, "reelgate", "password", "global"):
                wait = await self._wait(item, "password", "global")
                raise _refused("Too many failed sign-ins on this site right now.", wait, "global")
        for item in self.per_address:
            if not await self.limiter.test(item, "reelgate", "password", "address", address):
                wait = await self._wait(item, "password", "address", address)
                raise _refused("Too many failed sign-ins from this address.", wait, "address")
        for item in self.per_account:
            if not await self.limiter.hit(item, "reelgate", "password", "account", account):
                wait = await self._wait(item, "password", "account", account)
                raise _refused("Too many failed sign-ins for this account.", wait, "account")

    async def password_failed(self, *, address: str) -> None:
        for item in self.global_failures:
            await self.limiter.hit(item, "reelgate", "password", "global")
        for item in self.per_address:
            await self.limiter.hit(item, "reelgate", "password", "address", address)

    async def password_ok(self, *, account: str) -> None:
        account = account.strip().lower()
        for item in self.per_account:
            await self.limiter.clear(item, "reelgate", "password", "account", account)

    async def signup_attempt(self, *, address: str) -> None:
        """Counts a sign-up from an address; raises RateLimited over the address's allowance."""
        for item in self.signups_per_address:
            if not await self.limiter.hit(item, "reelgate", "signup", address):
                wait = await self._wait(item, "signup", address)
                raise _refused("Too many sign-ups from this address.", wait, "address")

    async def signup_credits_allowed(self, *, address: str) -> bool:
        """Whether a new account from this address still gets the free sign-up credits (and counts it)."""
        allowed = True
        for item in self.signup_credits_per_address:
            allowed = await self.limiter.hit(item, "reelgate", "signup-credits", address) and allowed
        return allowed


def _refused(message: str, wait: int, scope: str) -> RateLimited:
    minutes = "a minute" if wait <= 60 else f"{math.ceil(wait / 60)} minutes"
    return RateLimited(f"{message} Try again in {minutes}.", retry_after=wait, details={"scope": scope})
