"""PIN hashing with argon2id (argon2-cffi), optionally peppered.

A 4-digit PIN has 10,000 values: a hash alone only slows down whoever holds
the table. The pepper (a server-side secret, HMAC-SHA256 of the PIN before
argon2) makes a stolen database useless without the daemon's configuration;
the attempt limit and lockout protect the phone channel. Hashing costs tens
of milliseconds by design: callers run :meth:`PinHasher.hash` and
:meth:`PinHasher.verify` in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from callcenter.crm.settings import PinHashSettings


class PinHasher:
    def __init__(self, settings: PinHashSettings | None = None) -> None:
        settings = settings or PinHashSettings()
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_cost_kib,
            parallelism=settings.parallelism,
        )
        self._pepper = settings.resolved_pepper()

    def _material(self, pin: str) -> str:
        if self._pepper is None:
            return pin
        return hmac.new(self._pepper, pin.encode(), hashlib.sha256).hexdigest()

    def hash(self, pin: str) -> str:
        return self._hasher.hash(self._material(pin))

    def verify(self, stored: str, pin: str) -> bool:
        """True when *pin* matches; a corrupt stored hash is a mismatch."""
        try:
            return self._hasher.verify(stored, self._material(pin))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
