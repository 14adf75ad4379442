"""Legs on plain instruments (the underlying, a future, any quoted instrument) on
hand-built days: every fill, quantity, cost and paisa worked out by hand.

The hand chain of ``_engine_fixtures`` (2024-01-08, 09:15-09:30 IST, BANKNIFTY lot 15,
entry window 09:16-09:20, exit 09:25, cross fills) plus a futures dataset of two NSE
futures quoted every second (the January future is the front month on that day).
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from _engine_fixtures import (
    HAND_DAY,
    HAND_SPEC,
    LOT,
    SESSION_SECONDS,
    HandChain,
    hand_costs_paise,
    hand_order_costs_paise,
    hand_spec,
    ist,
    merge,
    second_of,
    write_hand_lake,
)

from ticklake.backtest.engine import run_day
from ticklake.backtest.spec import parse_spec, spec_document, spec_hash
from ticklake.errors import ConfigError

FUTURES = "banknifty_futures"
FRONT, NEXT = "BANKNIFTY24JANFUT", "BANKNIFTY24FEBFUT"


def _chain() -> HandChain:
    chain = HandChain()
    chain.set_spot("09:15:00", 48_020.0)
    for strike in (47_900, 48_000, 48_100):
        chain.contract(strike, "CE", 200.0, 200.5)
        chain.contract(strike, "PE", 180.0, 180.4)
    return chain


def _futures(front: dict[str, tuple[float, float]], *, gap: tuple[str, str] | None = None) -> Any:
    """Quotes of the two futures each second; ``front`` maps a start clock to (bid, ask)
    of the front month from then on; ``gap`` = no front-month rows in [start, end)."""
    bids = np.full(SESSION_SECONDS, np.nan)
    asks = np.full(SESSION_SECONDS, np.nan)
    for clock, (bid, ask) in sorted(front.items()):
        bids[second_of(clock) :] = bid
        asks[second_of(clock) :] = ask
    rows: dict[str, list[Any]] = {
        k: [] for k in ("ts", "instrument", "seq", "bid_price", "ask_price")
    }
    base = ist("09:15:00")
    skip = range(second_of(gap[0]), second_of(gap[1])) if gap else range(0)
    for second in range(SESSION_SECONDS):
        stamp = base + timedelta(seconds=second)
        if second not in skip:
            rows["ts"].append(stamp)
            rows["instrument"].append(FRONT)
            rows["seq"].append(0)
            rows["bid_price"].append(float(bids[second]))
            rows["ask_price"].append(float(asks[second]))
        rows["ts"].append(stamp)  # the next month, 300 points over, never chosen
        rows["instrument"].append(NEXT)
        rows["seq"].append(0)
        rows["bid_price"].append(float(bids[second]) + 300)
        rows["ask_price"].append(float(asks[second]) + 300)
    return pl.DataFrame(rows).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))


def _lake(tmp_path: Path, futures: pl.DataFrame | None) -> Any:
    lake = write_hand_lake(tmp_path / "lake", _chain())
    if futures is not None:
        lake.write(FUTURES, futures, schema="quotes", timezone="Asia/Kolkata")
    return lake


def _hedged(**leg: Any) -> Any:
    """Short ATM straddle plus a futures leg."""
    future = {"name": "fut", "side": "buy", "instrument": {"dataset": FUTURES}, **leg}
    return hand_spec(legs=[*HAND_SPEC["legs"], future])


def _futures_costs_paise(buying: bool, value_paise: int) -> int:
    """NSE futures order costs on 2024-01-08, by hand: STT 0.0125 % on sells, exchange
    0.0019 %, stamp 0.002 % on buys (brokerage, SEBI and GST as for options)."""
    return hand_order_costs_paise(
        buying, value_paise, stt="0.000125", exchange="0.000019", stamp="0.00002"
    )


def test_a_future_hedge_trades_the_front_month_at_its_quotes_with_futures_costs(
    tmp_path: Path,
) -> None:
    futures = _futures({"09:15:00": (48_100.0, 48_101.5), "09:21:00": (48_250.0, 48_251.0)})
    outcome = run_day(_lake(tmp_path, futures), _hedged(), HAND_DAY)
    trades = outcome.trades
    fut = trades.filter(pl.col("leg") == "fut")
    # Bought at the front month's ask at the first entry second, sold at its bid at 09:25.
    assert fut["symbol"].to_list() == [FRONT, FRONT]
    assert fut["side"].to_list() == ["buy", "sell"]
    assert fut["price_paise"].to_list() == [4_810_150, 4_825_000]
    assert fut["reason"].to_list() == ["entry", "exit_time"]
    assert fut["quantity"].to_list() == [LOT, LOT]
    assert fut["lots"].to_list() == [1, 1]
    # No strike or option type; the expiry is the January future's: 2024-01-25.
    assert fut["strike"].to_list() == [None, None]
    assert fut["opt_type"].to_list() == [None, None]
    assert fut["expiry"].to_list() == [date(2024, 1, 25)] * 2
    # (48,250.00 - 48,101.50) × 15 = 2,227.50 rupees.
    assert fut["realized_pnl_paise"].to_list() == [0, 222_750]
    buy_value, sell_value = 15 * 4_810_150, 15 * 4_825_000
    assert fut["costs_paise"].to_list() == [
        _futures_costs_paise(True, buy_value),
        _futures_costs_paise(False, sell_value),
    ]
    # The option legs are unchanged by the hedge: ATM 48,000 straddle, option costs.
    options = trades.filter(pl.col("leg") != "fut")
    assert options["strike"].to_list() == [48_000.0] * 4
    assert options["costs_paise"].to_list() == [
        hand_costs_paise(side == "buy", LOT * price)
        for side, price in zip(options["side"], options["price_paise"], strict=True)
    ]
    straddle_gross = LOT * (20_000 + 18_000 - 20_050 - 18_040)
    assert outcome.summary["gross_pnl_paise"] == straddle_gross + 222_750
    assert outcome.summary["costs_paise"] == int(trades["costs_paise"].sum())


def test_the_underlying_shorthand_trades_the_spot_series_at_its_price(tmp_path: Path) -> None:
    chain = _chain()
    chain.set_spot("09:22:00", 48_110.0)
    lake = write_hand_lake(tmp_path / "lake", chain)
    spec = hand_spec(legs=[{"name": "spot", "instrument": "underlying", "side": "sell", "lots": 2}])
    outcome = run_day(lake, spec, HAND_DAY)
    trades = outcome.trades
    # A price-only series fills at its price on both sides.
    assert trades["price_paise"].to_list() == [4_802_000, 4_811_000]
    assert trades["side"].to_list() == ["sell", "buy"]
    assert trades["symbol"].to_list() == ["BANKNIFTY", "BANKNIFTY"]
    assert trades["expiry"].to_list() == [None, None]
    assert trades["quantity"].to_list() == [2 * LOT, 2 * LOT]
    assert outcome.summary["gross_pnl_paise"] == -(4_811_000 - 4_802_000) * 2 * LOT


def test_own_lot_size_and_a_stale_future_waits_with_its_reason_recorded(tmp_path: Path) -> None:
    # The front month has no rows 09:15-09:18: as-of tolerance runs out, so no quote
    # until 09:18:00; the whole position waits for it (entries are all-or-nothing).
    futures = _futures({"09:15:00": (48_100.0, 48_101.5)}, gap=("09:15:00", "09:18:00"))
    spec = _hedged(lots=3, instrument={"dataset": FUTURES, "lot_size": 1})
    outcome = run_day(_lake(tmp_path, futures), spec, HAND_DAY)
    entries = outcome.trades.filter(pl.col("reason") == "entry")
    assert (
        entries["ts"].dt.replace_time_zone(None).to_list()
        == [ist("09:18:00").replace(tzinfo=None)] * 3
    )
    fut = outcome.trades.filter(pl.col("leg") == "fut")
    assert fut["quantity"].to_list() == [3, 3]  # lots 3 × its own lot size 1
    assert fut["lots"].to_list() == [3, 3]
    attempts = outcome.attempts
    assert attempts.filter(pl.col("leg") == "fut")["reason"].to_list() == ["missing_quote"]


def test_combined_pct_stop_is_a_percentage_of_the_option_premium_not_the_future(
    tmp_path: Path,
) -> None:
    # Straddle credit 200 + 180 = 380 per unit; the future's 48,101.50 is no premium.
    # At 09:21 both options rise: CE ask 300.5, PE ask 280.4 → the straddle loses
    # (300.5 - 200) + (280.4 - 180) = 200.9 per unit; the future gains 48,250 - 48,101.5
    # = 148.5: combined loss 52.4 per unit = 13.8 % of 380 (≥ 10 %: stop). Had the
    # future's notional counted, 52.4 / 48,481.5 = 0.1 % would never stop.
    chain = _chain()
    chain.set_quote(48_000, "CE", "09:21:00", 300.0, 300.5)
    chain.set_quote(48_000, "PE", "09:21:00", 280.0, 280.4)
    lake = write_hand_lake(tmp_path / "lake", chain)
    futures = _futures({"09:15:00": (48_100.0, 48_101.5), "09:21:00": (48_250.0, 48_251.0)})
    lake.write(FUTURES, futures, schema="quotes", timezone="Asia/Kolkata")
    spec = parse_spec(
        merge(
            HAND_SPEC,
            {
                "legs": [
                    *HAND_SPEC["legs"],
                    {"name": "fut", "side": "buy", "instrument": {"dataset": FUTURES}},
                ],
                "exits": {"stop_loss": {"pct": 10}},
            },
        )
    )
    outcome = run_day(lake, spec, HAND_DAY)
    exits = outcome.trades.filter(pl.col("reason") != "entry")
    assert set(exits["reason"]) == {"stop_loss"}
    assert (
        exits["ts"].dt.replace_time_zone(None).to_list()
        == [ist("09:21:00").replace(tzinfo=None)] * 3
    )


def test_futures_day_with_the_front_month_expired_rolls_to_the_next(tmp_path: Path) -> None:
    from ticklake.backtest.instruments import _front_future

    assert _front_future([FRONT, NEXT], date(2024, 1, 25)) == FRONT  # expiry day itself
    assert _front_future([FRONT, NEXT], date(2024, 1, 26)) == NEXT
    assert _front_future([FRONT, "RELIANCE"], date(2024, 1, 8)) is None


def test_a_dataset_of_several_non_futures_needs_a_symbol(tmp_path: Path) -> None:
    lake = _lake(tmp_path, None)
    frame = pl.DataFrame(
        {
            "ts": [ist("09:15:00"), ist("09:15:00")],
            "instrument": ["RELIANCE", "INFY"],
            "price": [2_500.0, 1_500.0],
        }
    ).with_columns(pl.col("ts").cast(pl.Datetime("ns", "UTC")))
    lake.write("stocks", frame, schema="prices", timezone="Asia/Kolkata")

    def stock_leg(**instrument: Any) -> Any:
        leg = {"name": "fut", "side": "buy", "instrument": {"dataset": "stocks", **instrument}}
        return hand_spec(
            legs=[*HAND_SPEC["legs"], leg],
            fills={"as_of_tolerance_seconds": 3600, "max_quote_age_seconds": 3600},
        )

    with pytest.raises(ConfigError, match=r"'stocks' holds 2 instruments .*INFY, RELIANCE.*symbol"):
        run_day(lake, stock_leg(), HAND_DAY)
    chosen = run_day(lake, stock_leg(symbol="INFY"), HAND_DAY)
    assert chosen.trades.filter(pl.col("leg") == "fut")["price_paise"].to_list() == [150_000] * 2
    with pytest.raises(ConfigError, match=r"leg fut: instrument dataset 'nowhere' is not in"):
        run_day(lake, _hedged(instrument={"dataset": "nowhere"}), HAND_DAY)


def test_bars_are_traded_at_their_close_only_once_the_bar_has_closed(tmp_path: Path) -> None:
    lake = _lake(tmp_path, None)
    # 1-minute bars: the 09:15 bar closes at 48,000 at 09:16:00, the 09:16 bar at 48,500
    # at 09:17:00. An entry at 09:16:30 must use 48,000 (the 09:16 bar is not closed).
    opens = [ist("09:15:00"), ist("09:16:00")]
    bars = pl.DataFrame(
        {
            "ts": opens,
            "ts_end": [t + timedelta(minutes=1) for t in opens],
            "instrument": ["BANKNIFTY-I"] * 2,
            "open": [48_000.0, 48_000.0],
            "high": [48_000.0, 48_500.0],
            "low": [48_000.0, 48_000.0],
            "close": [48_000.0, 48_500.0],
        }
    ).with_columns(pl.col("ts", "ts_end").cast(pl.Datetime("ns", "UTC")))
    lake.write("fut_bars", bars, schema="bars", timezone="Asia/Kolkata")
    spec = hand_spec(
        legs=[{"name": "fut", "side": "buy", "instrument": {"dataset": "fut_bars"}}],
        fills={"as_of_tolerance_seconds": 3600, "max_quote_age_seconds": 3600},
    )
    outcome = run_day(lake, spec, HAND_DAY)
    entry = outcome.trades.filter(pl.col("reason") == "entry")
    # Entry at 09:16:00: the 09:15 bar closed exactly then (known at its ts_end).
    assert entry["ts"].dt.replace_time_zone(None).to_list() == [
        ist("09:16:00").replace(tzinfo=None)
    ]
    assert entry["price_paise"].to_list() == [4_800_000]
    exit_ = outcome.trades.filter(pl.col("reason") == "exit_time")
    assert exit_["price_paise"].to_list() == [4_850_000]


def test_spec_rules_and_hashes_of_instrument_legs() -> None:
    # Option-only specs hash as they did before instrument legs existed: the document
    # hashed has no instrument key (oracle: the hash of the hand-written document).
    import hashlib
    import json

    plain = hand_spec()
    document = merge(HAND_SPEC, {})
    assert "instrument" not in json.dumps(spec_document(plain)["legs"])
    expected = plain.model_dump(mode="json")
    for leg in expected["legs"]:
        del leg["instrument"]
    body = json.dumps(expected, sort_keys=True, separators=(",", ":"))
    assert spec_hash(plain) == hashlib.sha256(body.encode()).hexdigest()[:16]
    assert parse_spec(spec_document(plain)) == plain == parse_spec(document)
    hedged = _hedged()
    assert parse_spec(spec_document(hedged)) == hedged
    assert spec_hash(hedged) != spec_hash(plain)

    bad = [
        ({"name": "x", "side": "buy"}, "give opt_type"),
        ({"name": "x", "side": "buy", "opt_type": "CE", "instrument": "underlying"}, "no opt_type"),
        ({"name": "x", "side": "buy", "instrument": "future"}, "write 'underlying'"),
        (
            {
                "name": "x",
                "side": "buy",
                "instrument": "underlying",
                "selector": {"kind": "otm", "steps": 1},
            },
            "chooses option strikes",
        ),
    ]
    for leg, message in bad:
        with pytest.raises(ConfigError, match=message) as caught:
            hand_spec(legs=[leg])
        assert "at least 1 item" not in str(caught.value)
    no_underlying = merge(
        HAND_SPEC, {"legs": [{"name": "u", "side": "buy", "instrument": "underlying"}]}
    )
    no_underlying["universe"].pop("underlying_dataset")
    with pytest.raises(ConfigError, match="underlying_dataset is not set"):
        parse_spec(no_underlying)


def test_a_condition_reads_the_instrument_leg_and_runs_alike_on_every_executor(
    tmp_path: Path,
) -> None:
    from ticklake.backtest.runner import run_backtest

    chain = _chain()
    chain.set_spot("09:22:00", 48_110.0)
    lake = write_hand_lake(tmp_path / "lake", chain)
    spec = hand_spec(
        legs=[{"name": "hedge", "instrument": "underlying", "side": "buy"}],
        exits={"when": "hedge.ltp > 48100"},
    )
    outcome = run_day(lake, spec, HAND_DAY)
    # The index crosses 48,100 at 09:22:00: the exit condition closes the leg then.
    assert [(r["reason"], r["price_paise"]) for r in outcome.trades.iter_rows(named=True)] == [
        ("entry", 4_802_000),
        ("exit_condition", 4_811_000),
    ]
    assert outcome.trades["ts"].dt.replace_time_zone(None).to_list()[1] == ist("09:22:00").replace(
        tzinfo=None
    )

    hedged = _hedged()
    futures = _futures({"09:15:00": (48_100.0, 48_101.5), "09:21:00": (48_250.0, 48_251.0)})
    lake.write(FUTURES, futures, schema="quotes", timezone="Asia/Kolkata")
    serial = run_backtest(lake, hedged, executor="serial", run_id="serial", use_cache=False)
    process = run_backtest(
        lake, hedged, executor="process", workers=2, run_id="process", use_cache=False
    )
    assert serial.status == process.status == "complete"
    for name in ("trades.parquet", "daily.parquet", "attempts.parquet"):
        assert (serial.run_dir / name).read_bytes() == (process.run_dir / name).read_bytes()
    assert serial.trades().filter(pl.col("leg") == "fut").height == 2


def test_a_run_id_already_taken_is_a_clear_error_and_leaves_the_run_alone(
    tmp_path: Path,
) -> None:
    from ticklake.backtest.runner import run_backtest

    lake = write_hand_lake(tmp_path / "lake", _chain())
    first = run_backtest(lake, hand_spec(), run_id="mine", use_cache=False)
    ledger = (first.run_dir / "run.json").read_bytes()
    with pytest.raises(ConfigError, match=r"run 'mine' already exists .*another run_id"):
        run_backtest(lake, hand_spec(), run_id="mine", use_cache=False)
    assert (first.run_dir / "run.json").read_bytes() == ledger
