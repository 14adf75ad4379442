from __future__ import annotations

import math

import pandas as pd
import polars as pl
from _quality_helpers import Validate, at

from ticklake.lake import Lake
from ticklake.quality import validate_dataset


def test_p1_flags_a_spike_with_median_and_mad(validate: Validate) -> None:
    prices = [100.0 + 0.01 * math.sin(i) for i in range(300)]
    prices[150] = 103.0  # a 3 % print
    prices[200] = 100.2  # 20 bps: below min_deviation_bps, however many MADs
    frame = pl.DataFrame(
        {"ts": [at(i) for i in range(300)], "instrument": ["X"] * 300, "price": prices}
    )
    report = validate(frame, "prices", ["P1"])
    summary = report.rule("P1")
    # oracle: pandas centred rolling median over 61 rows
    series = pd.Series(prices)
    median = series.rolling(61, center=True, min_periods=15).median()
    mad = (series - median).abs().rolling(61, center=True, min_periods=15).median()
    deviation = (series - median).abs()
    expected = ((deviation > 10 * 1.4826 * mad) & (deviation / median * 1e4 >= 50)).sum()
    assert summary.violations == expected == 1
    assert summary.offending["price"].to_list() == [103.0]
    loose = validate(frame, "prices", ["P1"], {"P1": {"min_deviation_bps": 10}}, dataset="loose")
    assert loose.rule("P1").violations == 2


def test_p2_frozen_runs_count_their_rows(validate: Validate) -> None:
    values = [float(i) for i in range(100)] + [7.0] * 200 + [float(i) for i in range(50)]
    frame = pl.DataFrame(
        {"ts": [at(i) for i in range(350)], "instrument": ["X"] * 350, "price": values}
    )
    report = validate(frame, "prices", ["P2"])
    summary = report.rule("P2")
    # 200 rows of 7.0 span 199 s >= 120 s; the 7.0 at row 7 is a different run
    assert (summary.checked, summary.violations) == (350, 200)
    assert summary.offending["frozen_seconds"].to_list() == [199.0]
    longer = validate(frame, "prices", ["P2"], {"P2": {"min_frozen_seconds": 300}}, dataset="l")
    assert longer.rule("P2").violations == 0


def _bars(
    start_second: int, rows: list[tuple[float, float, float, float]], minutes: int
) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame(
        {
            "ts": [at(start_second + 60 * minutes * i) for i in range(n)],
            "ts_end": [at(start_second + 60 * minutes * (i + 1)) for i in range(n)],
            "instrument": ["X"] * n,
            "open": [r[0] for r in rows],
            "high": [r[1] for r in rows],
            "low": [r[2] for r in rows],
            "close": [r[3] for r in rows],
            "volume": [1.0] * n,
        }
    )


def test_r7_rolls_up_in_time_order_with_a_relative_tolerance(lake: Lake) -> None:
    base = 50_000.0
    minute = [
        (base + i, base + i + 5, base + i - 5, base + i + 1) for i in range(10)
    ]  # two 5-minute windows
    ours = _bars(0, minute, 1)
    # reference built by hand from the same minutes: open = first, close = last
    reference_rows = [
        (minute[0][0], max(r[1] for r in minute[:5]), min(r[2] for r in minute[:5]), minute[4][3]),
        (minute[5][0], max(r[1] for r in minute[5:]), min(r[2] for r in minute[5:]), minute[9][3]),
    ]
    reference = _bars(0, reference_rows, 5)
    # 4.0 off on a 50,000 price = 0.8 bp: inside a 1 bp tolerance (an absolute 1e-4
    # tolerance would call it a failure)
    reference = reference.with_columns(
        pl.when(pl.int_range(pl.len()) == 1).then(pl.col("close") + 4.0).otherwise(pl.col("close"))
    )
    lake.write("ours", ours, schema="bars")
    lake.write("venue", reference, schema="bars")
    skipped = validate_dataset(lake, "ours", rules=["R7"])
    assert skipped.rule("R7").status == "skipped"
    report = validate_dataset(
        lake,
        "ours",
        rules=["R7"],
        parameters={"R7": {"reference_dataset": "venue", "tolerance_bps": 1}},
    )
    summary = report.rule("R7")
    assert (summary.checked, summary.violations) == (2, 0)
    assert round(summary.statistics["max_price_difference_bps"], 6) == round(
        4 / (reference_rows[1][3] + 4) * 1e4, 6
    )
    strict = validate_dataset(
        lake,
        "ours",
        rules=["R7"],
        parameters={"R7": {"reference_dataset": "venue", "tolerance_bps": 0.5}},
    )
    assert strict.rule("R7").violations == 1
    assert strict.rule("R7").offending["close_reference"].to_list() == [reference_rows[1][3] + 4.0]
