"""The day cache key covers the editable cost table, not just its name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ticklake.backtest.runner import cache_key
from ticklake.backtest.spec import parse_spec

SPEC = {
    "name": "s",
    "universe": {"underlying": "BANKNIFTY", "options_dataset": "o"},
    "time": {"start": "2024-01-08", "end": "2024-01-08"},
    "legs": [{"name": "ce", "opt_type": "CE", "side": "sell"}],
}


def test_editing_a_cost_table_changes_the_cache_key(tmp_path: Path) -> None:
    table = tmp_path / "costs.csv"
    shipped = Path(__file__).resolve().parents[3] / "src/ticklake/backtest/data/costs_nse_fo.csv"
    table.write_text(shipped.read_text())
    spec = parse_spec({**SPEC, "costs": {"table": str(table)}})
    before = cache_key(spec, date(2024, 1, 8), {"o/2024-01-08": "abc"})
    assert cache_key(spec, date(2024, 1, 8), {"o/2024-01-08": "abc"}) == before
    table.write_text(table.read_text().replace("per_order,20,", "per_order,25,"))
    assert cache_key(spec, date(2024, 1, 8), {"o/2024-01-08": "abc"}) != before
    assert cache_key(spec, date(2024, 1, 8), {"o/2024-01-08": "abd"}) != before
