-- materialized: dataset
-- layer: gold
-- key: instrument, ts
-- incremental: by_day
-- description: per instrument and UTC day: trades, volume, VWAP, range, first/last trade
--
-- A daily summary of a trades dataset (here the collector's bronze.binance_trades).
SELECT instrument,
       max(ts) AS ts,
       min(ts) AS first_trade_ts,
       count(*) AS trades,
       sum(size) AS volume,
       sum(price * size) / sum(size) AS vwap,
       arg_min(price, ts) AS open,
       max(price) AS high,
       min(price) AS low,
       arg_max(price, ts) AS close
FROM bronze.binance_trades
GROUP BY instrument
