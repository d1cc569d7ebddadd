"""Rows as text, for the terminal: the ``sql`` command and the demo."""

from __future__ import annotations

import json


def format_rows(names: list[str], rows: list[tuple], fmt: str = "table") -> str:
    """``table`` (aligned columns, numbers right-aligned), ``tsv`` or ``json`` (one object per line)."""
    if fmt == "json":
        return "\n".join(json.dumps(dict(zip(names, row)), default=str) for row in rows)
    cells = [names] + [[f"{v:.6f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    if fmt == "tsv":
        return "\n".join("\t".join(line) for line in cells)
    widths = [max(len(line[i]) for line in cells) for i in range(len(names))]
    numeric = [bool(rows) and all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(names))]
    return "\n".join("  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(line, widths, numeric)).rstrip()
                     for line in cells)
