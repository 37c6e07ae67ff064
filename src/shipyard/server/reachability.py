"""Whether this replica can reach the registry (its database, its artifact store), and why
not: what readiness reports, the ``shipyard_registry_reachable`` gauge, and the one log line
per outage.

A replica that loses the registry keeps serving every version it has loaded: nothing on the
request path reads it. What needs it (the reload loop, rollout ticks, a new load) fails; the
first failure of an outage is logged with its reason and later ones are not, so an outage of
an hour is two log lines (down, back), not a traceback per reload interval. The reload
loop's next successful tick ends the outage.
"""

from __future__ import annotations

import logging

from shipyard.errors import ShipyardError

log = logging.getLogger("shipyard.server")


class Reachability:
    """The registry as this replica last found it: reachable, or the reason it is not."""

    def __init__(self) -> None:
        self.reason: str | None = None  # None while reachable

    @property
    def reachable(self) -> bool:
        return self.reason is None

    def failed(self, exc: Exception) -> None:
        """A call to the registry failed because it could not be reached."""
        reason = exc.message if isinstance(exc, ShipyardError) else repr(exc)
        if self.reason is None:
            log.warning(
                "the registry is unreachable: %s; the loaded versions keep serving, "
                "new loads wait until it is back",
                reason,
            )
        self.reason = reason

    def succeeded(self) -> None:
        """A round of calls to the registry (a reload tick) went through."""
        if self.reason is not None:
            log.info("the registry is reachable again")
            self.reason = None

    def describe(self) -> str | None:
        """What readiness says of the registry: None while it is reachable."""
        return None if self.reason is None else f"unreachable: {self.reason}"
