"""One exception tree for the whole service.

    MonitorError                 anything the CLI turns into a clean message and exit code
    ├── ConfigError              monitor.toml is missing, malformed or holds a bad value
    ├── RuleError                a rule or actor file does not parse or validate
    ├── FetchError               a source could not be fetched (network, HTTP status, limits)
    ├── ParseError               fetched bytes held no usable items
    ├── DeliveryError            a message could not be delivered
    │   └── PermanentDeliveryError   the server refused it for good (5xx)
    └── StoreError               the database is unusable (locked by another instance, ...)

Third-party exceptions are mapped to these at the module that talks to the library.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base of every error the service reports to its user."""


class ConfigError(MonitorError):
    """The configuration file is wrong; the message names the file and the key."""


class RuleError(MonitorError):
    """One or more rule files are wrong; `problems` lists each as `file:line: message`."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class FetchError(MonitorError):
    """A source could not be fetched. `retry_after`: seconds the server asked us to wait."""

    elapsed: float = 0.0  # seconds the failed attempt took

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(message)


class ParseError(MonitorError):
    """The fetched document held no items we could read."""


class DeliveryError(MonitorError):
    """A message could not be delivered now; it will be retried."""


class PermanentDeliveryError(DeliveryError):
    """The server refused the message for good; retrying will not help."""


class StoreError(MonitorError):
    """The database cannot be used."""
