"""Results presentation: value formatting for tables (HTML reports and plots come later)."""

from __future__ import annotations


def fmt_value(value: object) -> str:
    """Floats to 4 significant digits, integers with thousands separators."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
