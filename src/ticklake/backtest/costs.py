"""Trading costs from an editable table keyed by date, computed exactly in paise.

The table (``data/costs_nse_fo.csv`` ships as ``nse_fo``; any CSV with the same columns
works) has one row per component and validity range: ``basis`` is ``per_order`` (₹ per
order), ``per_lot`` (₹ per lot), ``bps_premium`` (basis points of the order's traded
value: the premium of an option, price × quantity of a future), or ``gst_rate`` (percent
on the components marked ``gst=yes``); ``side`` says whether it applies to buys, sells
or both; the optional ``segment`` column says which instruments a row applies to
(``options``, ``futures`` or any name an instrument leg's ``cost_segment`` gives; ``all``
or empty = every order; a table without the column applies every row to every order);
``source`` says where the number comes from.

Each component of each order is rounded half-up to the paisa on its own, then summed:
the total of a run is then exactly the sum of its fills' costs.

Examples:
    >>> from datetime import date
    >>> table = load_cost_table("nse_fo")
    >>> # sell 15 units at ₹100: brokerage 2000 + STT 93.75→94 + exchange 79.5→80
    >>> # + SEBI 0.15→0 + GST 18% of 2080 = 374.4→374  = 2548 paise
    >>> order_costs_paise(table, date(2024, 1, 10), buying=False, premium_paise=150_000, lots=1)
    2548
    >>> # sell a future, 15 units at ₹48,000 = ₹7,20,000 (segment futures): brokerage
    >>> # 2000 + STT 0.0125% 9000 + exchange 0.0019% 1368 + SEBI 72
    >>> # + GST 18% of 3440 = 619.2→619  = 13059 paise
    >>> order_costs_paise(table, date(2024, 1, 10), buying=False, premium_paise=72_000_000,
    ...                   lots=1, segment="futures")
    13059
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path

from ticklake.errors import ConfigError

DATA_DIR = Path(__file__).resolve().parent / "data"
_BASES = ("per_order", "per_lot", "bps_premium", "gst_rate")


@dataclass(frozen=True)
class CostRow:
    valid_from: date
    valid_to: date | None
    component: str
    basis: str
    rate: Decimal
    side: str
    gst: bool
    source: str
    segment: str = "all"

    def applies(self, day: date, buying: bool, segment: str = "options") -> bool:
        if day < self.valid_from or (self.valid_to is not None and day > self.valid_to):
            return False
        if self.segment not in ("all", segment):
            return False
        return self.side == "both" or (self.side == "buy") == buying


def cost_table_path(name_or_path: str) -> Path:
    """The file behind a cost table name: ``nse_fo`` is shipped, anything else is a path."""
    shipped = "/" not in name_or_path and not name_or_path.endswith(".csv")
    return DATA_DIR / f"costs_{name_or_path}.csv" if shipped else Path(name_or_path)


@lru_cache(maxsize=16)
def load_cost_table(name_or_path: str) -> tuple[CostRow, ...]:
    """Load ``nse_fo`` (shipped) or a CSV path; errors name the file, row and column."""
    path = cost_table_path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"cost table {name_or_path!r} not found ({path}); use 'nse_fo' or a CSV path with "
            "columns valid_from,valid_to,component,basis,rate,side,gst,source",
            path=str(path),
        )
    rows = []
    with path.open(newline="", encoding="utf-8") as fh:
        for line_no, raw in enumerate(csv.DictReader(fh), start=2):
            try:
                basis = raw["basis"].strip()
                if basis not in _BASES:
                    raise ValueError(f"basis {basis!r} is not one of {', '.join(_BASES)}")
                side = raw["side"].strip()
                if side not in ("buy", "sell", "both"):
                    raise ValueError(f"side {side!r} must be buy, sell or both")
                rows.append(
                    CostRow(
                        valid_from=date.fromisoformat(raw["valid_from"].strip()),
                        valid_to=(
                            date.fromisoformat(raw["valid_to"]) if raw["valid_to"].strip() else None
                        ),
                        component=raw["component"].strip(),
                        basis=basis,
                        rate=Decimal(raw["rate"].strip()),
                        side=side,
                        gst=raw["gst"].strip().lower() in ("yes", "true", "1"),
                        source=(raw.get("source") or "").strip(),
                        segment=(raw.get("segment") or "").strip() or "all",
                    )
                )
            except (KeyError, ValueError, ArithmeticError) as exc:
                raise ConfigError(
                    f"{path}, row {line_no}: {exc}", path=str(path), row=line_no
                ) from exc
    return tuple(rows)


def _paise(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def order_cost_breakdown(
    table: tuple[CostRow, ...],
    day: date,
    *,
    buying: bool,
    premium_paise: int,
    lots: int,
    per_order_override: float | None = None,
    per_lot_extra: float | None = None,
    segment: str = "options",
) -> dict[str, int]:
    """Each cost component of one order, in paise (``segment``: see the module doc)."""
    out: dict[str, int] = {}
    taxable = 0
    gst_rate: Decimal | None = None
    for row in table:
        if not row.applies(day, buying, segment):
            continue
        if row.basis == "gst_rate":
            gst_rate = row.rate
            continue
        if row.basis == "per_order":
            rate = Decimal(str(per_order_override)) if per_order_override is not None else row.rate
            amount = _paise(rate * 100)
        elif row.basis == "per_lot":
            amount = _paise(row.rate * 100 * lots)
        else:
            amount = _paise(Decimal(premium_paise) * row.rate / Decimal(10_000))
        out[row.component] = out.get(row.component, 0) + amount
        if row.gst:
            taxable += amount
    if per_lot_extra:
        extra = _paise(Decimal(str(per_lot_extra)) * 100 * lots)
        out["per_lot"] = extra
    if gst_rate is not None and taxable:
        out["gst"] = _paise(Decimal(taxable) * gst_rate / Decimal(100))
    return out


def order_costs_paise(table: tuple[CostRow, ...], day: date, **kwargs: object) -> int:
    """Total cost of one order in paise."""
    return sum(order_cost_breakdown(table, day, **kwargs).values())  # type: ignore[arg-type]
