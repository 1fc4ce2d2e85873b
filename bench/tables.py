"""The plain-text tables the benchmarks print: a title row, a rule, a row per result."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

#: (result key, title, format) of one column.
Column = tuple[str, str, str]


def cell(result: dict, key: str, fmt: str) -> str:
    value = result.get(key)
    if value is None:
        return "-"
    if key == "target_met":
        return "met" if value else "MISSED"
    return fmt.format(value)


def aligned(rows: Sequence[Sequence[str]], left: Collection[int]) -> list[str]:
    """``rows`` (the first one the titles) in columns, a rule under the titles; the columns
    numbered in ``left`` are aligned left, the others (figures) right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def render(results: Iterable[dict], columns: Sequence[Column], left: Collection[int]) -> list[str]:
    rows = [[title for _, title, _ in columns]]
    rows += [[cell(r, key, fmt) for key, _, fmt in columns] for r in results]
    return aligned(rows, left)
