-- materialized: view
-- description: our 1-minute bars from trades against the exchange's own 1m klines
--
-- One row a minute and instrument: our bar (silver.bars_1m, built from the collected
-- trades by `ticklake bars build`) next to the exchange's kline (bronze.binance_klines_1m),
-- with the differences. A minute only one side has is kept (the other side null), so
-- a missed minute shows instead of vanishing from the comparison.
SELECT coalesce(o.instrument, k.instrument) AS instrument,
       coalesce(o.ts, k.ts) AS ts,
       o.open AS our_open, k.open AS kline_open,
       o.high AS our_high, k.high AS kline_high,
       o.low AS our_low, k.low AS kline_low,
       o.close AS our_close, k.close AS kline_close,
       o.volume AS our_volume, k.volume AS kline_volume,
       o.volume - k.volume AS volume_difference,
       o.trade_count AS our_trades, k.trade_count AS kline_trades,
       (o.ts IS NULL) AS missing_ours,
       (k.ts IS NULL) AS missing_kline,
       (o.open IS DISTINCT FROM k.open OR o.high IS DISTINCT FROM k.high
        OR o.low IS DISTINCT FROM k.low OR o.close IS DISTINCT FROM k.close
        OR o.trade_count IS DISTINCT FROM k.trade_count) AS differs
FROM silver.bars_1m o
FULL OUTER JOIN bronze.binance_klines_1m k ON o.instrument = k.instrument AND o.ts = k.ts
