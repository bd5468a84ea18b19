"""An organization's use of what it is limited to, as apps report it.

Apps above accounts register a reporter in their AppConfig.ready() (the knowledge base
reports stored bytes, documents and passages); the organization's admin page and the
home page show every reporter's lines, current use against the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.template.defaultfilters import filesizeformat

from accounts.models import Organization


@dataclass(frozen=True)
class Allowance:
    """One limited quantity: how much is used, and the limit (None: no limit)."""

    label: str
    used: int
    limit: int | None
    in_bytes: bool = False

    def _format(self, value: int) -> str:
        return str(filesizeformat(value)) if self.in_bytes else f"{value:,}"

    @property
    def used_display(self) -> str:
        return self._format(self.used)

    @property
    def limit_display(self) -> str:
        return "no limit" if self.limit is None else self._format(self.limit)

    @property
    def percent(self) -> int | None:
        if not self.limit:
            return None
        return min(100, round(100 * self.used / self.limit))

    @property
    def is_full(self) -> bool:
        return self.limit is not None and self.used >= self.limit

    def __str__(self) -> str:
        return f"{self.label}: {self.used_display} of {self.limit_display}"


Reporter = Callable[[Organization], list[Allowance]]
_reporters: list[Reporter] = []


def register(reporter: Reporter) -> None:
    if reporter not in _reporters:
        _reporters.append(reporter)


def allowances_of(organization: Organization) -> list[Allowance]:
    """Every registered reporter's lines for the organization, in registration order."""
    return [line for reporter in _reporters for line in reporter(organization)]
