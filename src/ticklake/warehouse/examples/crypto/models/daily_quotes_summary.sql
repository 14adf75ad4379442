-- materialized: dataset
-- layer: gold
-- key: instrument, ts
-- incremental: by_day
-- description: per instrument and UTC day: quote updates, mean and max spread in bps
--
-- A daily summary of a quotes dataset (here the collector's bronze.binance_quotes).
SELECT instrument,
       max(ts) AS ts,
       count(*) AS quotes,
       avg((ask_price - bid_price) / ((ask_price + bid_price) / 2) * 1e4) AS mean_spread_bps,
       max((ask_price - bid_price) / ((ask_price + bid_price) / 2) * 1e4) AS max_spread_bps,
       count(*) FILTER (WHERE ask_price <= bid_price) AS crossed_or_locked
FROM bronze.binance_quotes
GROUP BY instrument
