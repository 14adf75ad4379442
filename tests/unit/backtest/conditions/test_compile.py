"""The compiler: pass order, golden plans, errors of each pass, registry extension."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import polars as pl
import pytest

from ticklake.analytics import registry
from ticklake.analytics.registry import NoParams, metric
from ticklake.backtest.conditions import RULES, ConditionError, compile_condition
from ticklake.backtest.conditions.passes import bind, lower, resolve, typecheck

LEGS = ("ce", "pe")
GOLDEN_CASES = {
    # The three example conditions.
    "issue_text_underlying": (
        "volume_1m > volume_2m and ema(1) > ema(5) and ltp > open_of_day",
        "entry",
    ),
    "issue_text_atm_leg": (
        "ce.volume_1m > ce.volume_2m and ema(1) > ema(5) and ce.ltp > ce.open_of_day",
        "entry",
    ),
    "issue_json_leg_ema": (
        {
            "left": {"metric": "ema", "args": {"n": 5, "field": "price"}, "of": "leg:ce"},
            "op": ">",
            "right": {"metric": "ltp", "of": "leg:ce"},
        },
        "entry",
    ),
    "crossing_entry": (
        "ema(1) crosses_above ema(5) or ce.ltp crosses_below ce.sma(3, mid)",
        "entry",
    ),
    "day_filter_gap": ("open_of_day > previous_close * 1.002", "day_filter"),
    "day_filter_expiry": (
        "ce.days_to_expiry == 0 or ce.trading_days_to_expiry == 1",
        "day_filter",
    ),
    "exit_program": (
        "position.pnl < -3000 or position.drawdown > 1500 or "
        "(ce.ltp + pe.ltp) crosses_above 1.5 * (ce.open_of_day + pe.open_of_day) or "
        "not realized_volatility(5) < 0.4",
        "exit",
    ),
}


def test_passes_run_in_the_documented_order() -> None:
    assert (resolve.run, bind.run, typecheck.run, lower.run) == RULES


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_compiled_plans_match_golden_files(name: str, golden: Callable[[str, str], None]) -> None:
    condition, usage = GOLDEN_CASES[name]
    plan = compile_condition(condition, usage=usage, legs=LEGS)  # type: ignore[arg-type]
    golden(name, plan.describe())


def test_sweep_bindings_are_applied_before_parameter_validation(
    golden: Callable[[str, str], None],
) -> None:
    plan = compile_condition(
        "ema(${fast}) > ema(${slow}, field=${column})",
        usage="entry",
        bindings={"fast": 2, "slow": 10, "column": "price"},
    )
    golden("sweep_bound", plan.describe())
    assert [a.column for a in plan.atoms] == ["underlying.ema_10m_price", "underlying.ema_2m_price"]


def test_equal_series_written_differently_share_one_atom() -> None:
    plan = compile_condition(
        "ema(5) > ema(minutes=5, field=price) + 1 and day_open > 0", usage="entry"
    )
    assert [a.column for a in plan.atoms] == ["underlying.ema_5m_price", "underlying.open_of_day"]


@pytest.mark.parametrize(
    ("text", "usage", "fragment", "column"),
    [
        ("foo > 1", "entry", "unknown metric 'foo'. Known metrics: ", 1),
        ("zz.ltp > 1", "entry", "unknown leg 'zz'; the strategy's legs are ce, pe", 4),
        ("position.pnl < -10", "entry", "only known while a position is open", 10),
        ("position.pnl < -10", "day_filter", "not in day filter", 10),
        ("position.vega > 1", "exit", "unknown position measure 'vega'", 10),
        ("ema(0) > 1", "entry", "minutes: Input should be greater than or equal to 1", 1),
        ("ema(1, price, 3) > 1", "entry", "at most 2 positional argument(s)", 1),
        ("ema(1, minutes=2) > 1", "entry", "parameter 'minutes' given twice", 1),
        ("ema(${fast}) > 1", "entry", "unbound sweep variable ${fast}; sweep axes: none", 5),
        ("1 < 2", "entry", "compares two constants", 1),
        (
            "iv > 0.2",
            "entry",
            "is an option metric; use it on a leg, e.g. ce.implied_volatility",
            1,
        ),
        (
            "days_to_expiry == 0",
            "day_filter",
            "is an option metric; use it on a leg, e.g. ce.days_to_expiry",
            1,
        ),
        ("spread < 2", "entry", "spread needs ask, bid, which the underlying does not have", 1),
        ("sma(5, mid) > 1", "entry", "sma needs ask, bid", 1),
        ("ltp / 0 > 1", "entry", "division by zero", 1),
    ],
)
def test_pass_errors_name_the_problem_and_point_at_it(
    text: str, usage: str, fragment: str, column: int
) -> None:
    with pytest.raises(ConditionError) as info:
        compile_condition(text, usage=usage, legs=LEGS)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert getattr(info.value, "column", None) == column


def test_a_metric_added_to_the_registry_is_usable_with_no_other_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Register a metric here; the language resolves, compiles and evaluates it."""
    monkeypatch.setattr(registry, "_METRICS", dict(registry._METRICS))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))

    @metric(
        name="price_doubled_test",
        family="test",
        title="Twice the price",
        unit="price",
        inputs=("grid.price",),
        kind="series",
        aliases=("twice",),
    )
    def price_doubled_test(params: NoParams) -> pl.Expr:
        """Twice the price.

        Formula:
            2 * price

        Examples:
            >>> 1
            1
        """
        return pl.col("price") * 2

    plan = compile_condition("twice > ltp + 10", usage="entry")
    assert [a.column for a in plan.atoms] == [
        "underlying.last_price",
        "underlying.price_doubled_test",
    ]
    # Evaluate the lowered plan on a grid: true where 2p > p + 10, i.e. p > 10.
    frame = pl.DataFrame({"price": [5.0, 10.0, 11.0, None]})
    columns = frame.select(*(a.expression().alias(a.column) for a in plan.atoms))
    assert plan.expression is not None
    result = columns.select(plan.expression.alias("hit"))["hit"].to_list()
    assert result == [False, False, True, None]


def test_minute_window_names_of_a_new_registered_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    from ticklake.analytics.metrics.technical import MinuteWindowParams

    monkeypatch.setattr(registry, "_METRICS", dict(registry._METRICS))

    @metric(
        name="price_range_test",
        family="test",
        title="Range over N minutes",
        unit="price",
        inputs=("grid.ts", "grid.price", "grid.session_date"),
        kind="series",
        params=MinuteWindowParams,
        output="price_range_{minutes}m",
    )
    def price_range_test(params: MinuteWindowParams) -> pl.Expr:
        """Max minus min of the price over N minutes.

        Formula:
            max - min

        Examples:
            >>> 1
            1
        """
        price = pl.col("price")
        window = f"{params.minutes}m"
        return price.rolling_max_by("ts", window) - price.rolling_min_by("ts", window)

    plan = compile_condition("price_range_test_2m > 3", usage="entry")
    atom = plan.atoms[0]
    assert (atom.metric, dict(atom.params)) == ("price_range_test", {"minutes": 2})
    start = datetime(2024, 1, 8, 9, 15)
    prices = [100.0, 101.0, 104.5, 102.0]
    frame = pl.DataFrame(
        {
            "ts": [start + timedelta(seconds=60 * i) for i in range(4)],
            "price": prices,
            "session_date": [date(2024, 1, 8)] * 4,
        }
    )
    values = frame.select(atom.expression().alias("v"))["v"].to_list()
    # windows (t-2m, t]: [100], [100,101], [101,104.5], [104.5,102]
    assert values == [0.0, 1.0, 3.5, 2.5]
    column = frame.select(atom.expression().alias(atom.column))
    assert plan.expression is not None
    assert column.select(plan.expression)[atom.column].to_list() == [False, False, True, False]
