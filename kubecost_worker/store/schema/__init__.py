"""The store's schema as it is now: one file per table and view (``<name>.sql``), the statement that creates it.

``migrations/`` is the history that brings an older store to these definitions, frozen once applied;
``tests/test_schema.py`` applies every migration to an empty store and holds each object it leaves to its
declaration here. What Python needs of the schema is read from here once, at import: the columns a writer sends to
each table, the tables whose rows belong to a run (cleanup removes them with the run) and the tables kept for
``KCW_RETENTION_DAYS`` and for ``KCW_DAILY_RETENTION_DAYS``.

The current-run rule is written once, in ``k8s_expense_current_runs.sql``; every view of current data joins that view
by name. The store installs such a view with the rule's SELECT in the place of the name (``as_installed``, which the
migration runner applies to each statement): ClickHouse plans a view named in a join as a query of its own, 3.5 to
4 ms a query in chDB 26.9, which made a ``*_current`` query 1.34-1.37x its cost with the rule inline beside 150
tenant-years (docs/storage.md). The daily tier's current-build rule is written once too, in
``k8s_day_current_builds.sql``, and the reconciliation's in ``k8s_current_reconciliations.sql``; both are installed
inline the same way.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
CURRENT_RUNS = "k8s_expense_current_runs"
CURRENT_BUILDS = "k8s_day_current_builds"  # the daily tier's rule: which build of a tenant-day readers see
CURRENT_RECONCILIATIONS = "k8s_current_reconciliations"  # which reconciliation with the bill of a tenant-day counts
RULES = (CURRENT_RUNS, CURRENT_BUILDS, CURRENT_RECONCILIATIONS)  # installed inline wherever a view joins them
LEDGER = "k8s_expense_runs"  # records runs; its rows belong to no run

_CREATE = re.compile(r"^CREATE (?:OR REPLACE )?(?:TABLE|VIEW|MATERIALIZED VIEW)(?: IF NOT EXISTS)? (\w+)")
_VIEW_SELECT = re.compile(r"^CREATE OR REPLACE VIEW \w+ AS\s+(.*)$", re.S)
_JOINED_RULE = re.compile(rf"\bJOIN ({'|'.join(RULES)}) AS (\w+)")
_NOT_A_COLUMN = re.compile(r"^(PROJECTION|INDEX|CONSTRAINT)\s")
_COMPUTED = re.compile(r"\s(ALIAS|DEFAULT|MATERIALIZED)\s")
_AFTER_TYPE = re.compile(r"\s+(?:CODEC|DEFAULT|ALIAS|MATERIALIZED|EPHEMERAL|COMMENT|TTL)\b")


@dataclass(frozen=True)
class Column:
    name: str
    definition: str  # the type and what follows it: codec, ALIAS or DEFAULT expression

    @property
    def computed(self) -> bool:
        """Computed on read (ALIAS) or filled by the server (DEFAULT): never sent by a writer."""
        return bool(_COMPUTED.search(f" {self.definition} "))

    @property
    def type_name(self) -> str:
        """The column's type: its definition up to the first codec, expression or comment outside parentheses."""
        for match in _AFTER_TYPE.finditer(self.definition):
            before = self.definition[:match.start()]
            if before.count("(") == before.count(")"):
                return before
        return self.definition


@functools.cache
def declarations() -> dict[str, str]:
    """name -> its statement, without comments and the final ``;``, for every table and view."""
    found = {}
    for path in sorted(DIRECTORY.glob("*.sql")):
        statement = without_comments(path.read_text()).strip().removesuffix(";").strip()
        match = _CREATE.match(statement)
        if not match or match.group(1) != path.stem:
            raise ValueError(f"{path.name} does not create {path.stem}")
        found[path.stem] = statement
    return found


def without_comments(sql: str) -> str:
    """``sql`` without its comment lines (``--``), as the declarations and the migrations are written."""
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))


def declaration(name: str) -> str:
    return declarations()[name]


def tables() -> list[str]:
    return [name for name, statement in declarations().items() if statement.startswith("CREATE TABLE")]


@functools.cache
def columns(table: str) -> tuple[Column, ...]:
    """The table's columns in their order, from its column list (its projections and indexes left out)."""
    statement = declaration(table)
    body = _parenthesised(statement, statement.index("("))
    return tuple(Column(*piece.split(None, 1)) for piece in _top_level_items(body)
                 if not _NOT_A_COLUMN.match(piece))


def written_columns(table: str) -> list[str]:
    """What a writer sends to the table, in the table's order: every column but those the server computes."""
    return [c.name for c in columns(table) if not c.computed]


def stored_columns(table: str) -> list[str]:
    """What the table stores, in its order: every column but the ALIAS ones (a DEFAULT column is stored, and
    filled by the server only where a writer leaves it out)."""
    return [c.name for c in columns(table) if " ALIAS " not in f" {c.definition} "]


def type_names(table: str, names: list[str]) -> list[str]:
    """The types of ``names`` in ``table``: what an insert would otherwise ask the server first (``DESCRIBE``)."""
    by_name = {c.name: c.type_name for c in columns(table)}
    return [by_name[name] for name in names]


def run_tables() -> tuple[str, ...]:
    """The tables whose rows belong to the run that wrote them (tagged with its run_id)."""
    return tuple(t for t in tables() if t != LEDGER and any(c.name == "run_id" for c in columns(t)))


def retained_tables() -> tuple[str, ...]:
    """The tables keyed by hour, whose hours expire after ``KCW_RETENTION_DAYS`` (``store/days.py``)."""
    return tuple(t for t in tables() if any(c.name == "hour" for c in columns(t)))


def daily_tables() -> tuple[str, ...]:
    """The tables keyed by day: a retention TTL on ``day`` (``KCW_DAILY_RETENTION_DAYS``) drops their rows."""
    return tuple(t for t in tables() if any(c.name == "day" for c in columns(t)))


def view_select(name: str) -> str:
    """The SELECT of the view ``name``'s declaration."""
    return _VIEW_SELECT.match(declaration(name)).group(1)


def as_installed(statement: str) -> str:
    """The statement as the store runs it: a join on the current runs, builds or reconciliations with the rule's
    SELECT in their place."""
    rules = {name: view_select(name) for name in RULES}
    return _JOINED_RULE.sub(lambda m: f"JOIN ({rules[m.group(1)]}) AS {m.group(2)}", statement)


def _parenthesised(text: str, start: int) -> str:
    depth = 0
    for at in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[at], 0)
        if depth == 0:
            return text[start + 1:at]
    raise ValueError(f"unbalanced parentheses: {text[start:start + 80]}")


def _top_level_items(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses and quotes."""
    items, depth, quoted, start = [], 0, False, 0
    for at, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and char == ",":
            items.append(text[start:at].strip())
            start = at + 1
    items.append(text[start:].strip())
    return [item for item in items if item]
