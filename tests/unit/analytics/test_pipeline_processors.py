"""Pre- and post-processors on hand-made rows whose answers are worked out by hand."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _pipeline_helpers import registered_test_metrics

from ticklake.analytics.buckets import BucketSpec
from ticklake.analytics.pipeline import (
    AggressorSideSpec,
    BookFromOrdersSpec,
    ConsolidatedBboSpec,
    parse_pipeline,
)
from ticklake.analytics.processors import (
    DAY,
    PassContext,
    aggressor_side,
    book_from_orders,
    consolidated_bbo,
)
from ticklake.analytics.run import run_pipeline
from ticklake.errors import ConfigError
from ticklake.lake import Lake, init_lake

DAY_1 = date(2024, 1, 2)


def at(clock: str) -> datetime:
    return datetime.fromisoformat(f"2024-01-02T{clock}").replace(tzinfo=UTC)


@pytest.fixture
def metrics() -> Iterator[None]:
    with registered_test_metrics():
        yield


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return init_lake(tmp_path / "lake")


def context(lake: Lake, **pass_fields: object) -> PassContext:
    spec = parse_pipeline(
        {"name": "p", "passes": [{"name": "a", "input": "trades", "modules": [], **pass_fields}]}
    )
    return PassContext(
        lake=lake,
        pipeline=spec,
        spec=spec.passes[0],
        timezone="UTC",
        days=(DAY_1,),
        bucket=BucketSpec(),
    )


def _quotes_and_trades(lake: Lake) -> pl.DataFrame:
    lake.write(
        "quotes",
        pl.DataFrame(
            {
                "ts": [at("10:00:00"), at("10:00:05")],
                "instrument": ["X", "X"],
                "seq": [1, 2],
                "bid_price": [99.0, 100.0],
                "ask_price": [101.0, 102.0],
            }
        ),
        schema="quotes",
        timezone="UTC",
    )
    trades = pl.DataFrame(
        {
            "ts": [
                at("10:00:01"),
                at("10:00:02"),
                at("10:00:03"),
                at("10:00:05"),
                at("10:00:06"),
                at("10:00:07"),
                at("10:00:08"),
                at("10:03:00"),
                at("10:00:04"),
            ],
            "instrument": ["X"] * 8 + ["Y"],
            "trade_id": [str(i) for i in range(9)],
            "price": [100.5, 99.5, 100.0, 100.5, 101.0, 101.0, 101.5, 99.0, 5.0],
            "size": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            "side": [None, None, None, None, None, None, "sell", None, None],
        }
    )
    lake.write("trades", trades, schema="trades", timezone="UTC")
    return trades


def test_aggressor_side_quote_rule_then_tick_rule(lake: Lake) -> None:
    trades = _quotes_and_trades(lake).with_columns(pl.lit(DAY_1).alias(DAY))
    spec = AggressorSideSpec(kind="aggressor_side", quotes="quotes", max_quote_age="1m")
    out = aggressor_side(trades, spec, context(lake))
    assert out["trade_id"].to_list() == trades["trade_id"].to_list()  # order kept
    assert list(zip(out["side"], out["side_source"], strict=True)) == [
        ("buy", "quote"),  # 100.5 above mid 100
        ("sell", "quote"),  # 99.5 below mid 100
        ("buy", "tick"),  # at the mid: up-tick from 99.5
        # Same instant as the 100/102 quote, which may already include this trade:
        # the earlier mid 100 applies, so a buy (with that quote it would be a sell).
        ("buy", "quote"),
        ("buy", "tick"),  # 101 = mid 101: up-tick from 100.5
        ("buy", "tick"),  # zero tick repeats the last non-zero tick
        ("sell", "vendor"),  # the vendor's side is kept
        ("sell", "tick"),  # the quote is 2m55s old (> 1m): down-tick
        (None, None),  # Y: no quote, no earlier trade
    ]


def test_aggressor_side_feeds_a_pass(lake: Lake, metrics: None) -> None:
    _quotes_and_trades(lake)
    spec = parse_pipeline(
        {
            "name": "sides",
            "metric_modules": ["_pipeline_test_metrics"],
            "passes": [
                {
                    "name": "minute",
                    "input": "trades",
                    "bucket": {"width": "5m"},
                    "preprocess": [{"kind": "aggressor_side", "quotes": "quotes"}],
                    "modules": [
                        {"metric": "pipeline_test_buy_volume"},
                        {"metric": "pipeline_test_volume"},
                    ],
                }
            ],
        }
    )
    run_pipeline(lake, spec, executor="serial")
    out = lake.read("gold.sides_minute").sort("instrument")
    assert out["pipeline_test_buy_volume"].to_list() == [1.0 + 4.0 + 8.0 + 16.0 + 32.0, 0.0]
    assert out["pipeline_test_volume"].to_list() == [255.0, 256.0]


def test_consolidated_bbo_takes_best_prices_across_venues(lake: Lake) -> None:
    quotes = pl.DataFrame(
        {
            "ts": [at("10:00:00"), at("10:00:01"), at("10:00:02"), at("10:00:02"), at("10:01:30")],
            "instrument": ["X"] * 5,
            "seq": [1, 2, 3, 4, 5],
            "venue": ["A", "B", "A", "B", "A"],
            "bid_price": [10.0, 10.0, 10.1, 9.9, 10.1],
            "bid_size": [5.0, 3.0, 1.0, 6.0, 1.0],
            "ask_price": [11.0, 10.8, 11.0, 10.9, 10.7],
            "ask_size": [5.0, 2.0, 5.0, 4.0, 1.0],
            DAY: [DAY_1] * 5,
        }
    )
    spec = ConsolidatedBboSpec(kind="consolidated_bbo", max_quote_age="1m")
    out = consolidated_bbo(quotes, spec, context(lake))
    columns = ["bid_price", "bid_size", "ask_price", "ask_size", "venues_at_bid", "venues_at_ask"]
    assert out["ts"].to_list() == [at("10:00:00"), at("10:00:01"), at("10:00:02"), at("10:01:30")]
    assert out.select(columns).rows() == [
        (10.0, 5.0, 11.0, 5.0, 1, 1),
        (10.0, 8.0, 10.8, 2.0, 2, 1),  # both venues at 10.0: sizes add up
        (10.1, 1.0, 10.9, 4.0, 1, 1),  # after both updates at 10:00:02
        (10.1, 1.0, 10.7, 1.0, 1, 1),  # B's quote is 88 s old (> 1m): dropped
    ]
    assert out["bid"].to_list() == out["bid_price"].to_list()


def test_l3_to_l2_uses_the_l3_book_replay_and_feeds_l1_metrics(lake: Lake) -> None:
    events = pl.DataFrame(
        {
            "ts": [at("10:00:00"), at("10:00:10"), at("10:00:20"), at("10:01:10")],
            "instrument": ["X"] * 4,
            "seq": [1, 2, 3, 4],
            "action": ["add", "add", "fill", "add"],
            "side": ["bid", "ask", "bid", "ask"],
            "order_id": [1, 2, 1, 3],
            "price": [10.0, 10.5, 10.0, 10.25],
            "size": [100.0, 50.0, 30.0, 10.0],
        }
    )
    book = book_from_orders(
        events.with_columns(pl.lit(DAY_1).alias(DAY)),
        BookFromOrdersSpec(kind="l3_to_l2", levels=2),
        context(lake, input="l3"),
    )
    assert book.select("bid_price_0", "bid_size_0", "ask_price_0").rows()[2:] == [
        (10.0, 70.0, 10.5),
        (10.0, 70.0, 10.25),
    ]
    lake.write("orders", events, schema="l3", timezone="UTC")
    spec = parse_pipeline(
        {
            "name": "book",
            "passes": [
                {
                    "name": "minute",
                    "input": "orders",
                    "preprocess": [
                        {"kind": "l3_to_l2", "levels": 2},
                        {"kind": "rename", "columns": {"bid_price_0": "bid", "ask_price_0": "ask"}},
                    ],
                    "modules": [{"metric": "spread"}, {"metric": "mid_price"}],
                }
            ],
        }
    )
    run_pipeline(lake, spec, executor="serial")
    out = lake.read("gold.book_minute")
    # Sampled at 10:00 (only the bid exists), 10:01 (last event 10:00:20) and 10:02.
    assert out["ts"].dt.strftime("%H:%M").to_list() == ["10:00", "10:01", "10:02"]
    assert out.select("spread", "mid_price").rows() == [
        (None, None),
        (0.5, 10.25),
        (0.25, 10.125),
    ]


def test_missing_quote_columns_are_named(lake: Lake) -> None:
    _quotes_and_trades(lake)
    lake.write(
        "prices_only",
        pl.DataFrame({"ts": [at("10:00:00")], "instrument": ["X"], "price": [1.0]}),
        schema="prices",
        timezone="UTC",
    )
    trades = lake.read("trades").with_columns(pl.lit(DAY_1).alias(DAY))
    spec = AggressorSideSpec(kind="aggressor_side", quotes="prices_only")
    with pytest.raises(ConfigError, match="'prices_only' has no best bid/ask columns"):
        aggressor_side(trades, spec, context(lake))
