"""Login throttling with the ``limits`` library (in-process moving windows).

A username that failed ``PER_USER`` times within the window, or a client address that failed
``PER_CLIENT`` times, is refused (429 with Retry-After) without checking the password, so guessing
is slow and costs the server no scrypt runs. Only failures count: a user who types the password
right is never throttled by their own successes.
"""

from __future__ import annotations

import time

from limits import RateLimitItemPerMinute, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

PER_USER = parse("10/5 minutes")
PER_CLIENT = RateLimitItemPerMinute(60)


class LoginLimits:
    def __init__(self, per_user=PER_USER, per_client=PER_CLIENT) -> None:
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_user, self.per_client = per_user, per_client

    def _keys(self, username: str, client: str):
        return ((self.per_user, "user", username.lower()), (self.per_client, "client", client))

    def refused(self, username: str, client: str) -> int:
        """Seconds to wait before another try (0: go ahead)."""
        wait = 0
        for item, *key in self._keys(username, client):
            if not self.limiter.test(item, *key):
                reset = self.limiter.get_window_stats(item, *key).reset_time
                wait = max(wait, int(reset - time.time()) + 1)
        return wait

    def failed(self, username: str, client: str) -> None:
        for item, *key in self._keys(username, client):
            self.limiter.hit(item, *key)
