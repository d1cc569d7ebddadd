"""Building PromQL safely: outside data only ever enters a query as an escaped string literal."""

from __future__ import annotations

from ..config import is_safe_tenant_id
from ..errors import TerminalError


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly ``value``."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def tenant_matcher(tenant_label: str, tenant: str) -> str:
    """``tenant_id="<tenant>"``; refuses a tenant id outside the safe alphabet.

    Refusing is the first defence, escaping the second: even an id that slipped past validation stays one
    string literal and cannot close the selector or add a matcher.
    """
    if not is_safe_tenant_id(tenant):
        raise TerminalError(f"tenant id outside the safe alphabet: {tenant!r}")
    return f"{tenant_label}={quote(tenant)}"


def names_matcher(names: list[str], prefixes: list[str] = ()) -> str:
    """``__name__=~"a|b|prefix_.+"`` for fixed metric names (which are ours, not outside data)."""
    alternatives = [*names, *(f"{p}.+" for p in prefixes)]
    return f"__name__=~{quote('|'.join(alternatives))}"
