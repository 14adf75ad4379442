-- materialized: dataset
-- layer: gold
-- key: instrument, ts
-- incremental: by_day
-- description: the 09:15-09:20 IST opening window per instrument and day
--
-- Opening-window facts from 1-minute bars: the open of the first bar starting at or after
-- 09:15 IST, the close of the last bar ending by 09:20 IST, the window's return, high,
-- low and volume. ts is the window's end (09:20 IST) in UTC. Rename
-- silver.banknifty_spot_1m to your bars.
WITH bars AS (
    SELECT instrument, ts, ts_end, open, high, low, close, volume
    FROM silver.banknifty_spot_1m
    WHERE (ts AT TIME ZONE 'Asia/Kolkata')::TIME >= TIME '09:15'
      AND (ts_end AT TIME ZONE 'Asia/Kolkata')::TIME <= TIME '09:20'
)
SELECT instrument,
       max(ts_end) AS ts,
       arg_min(open, ts) AS open,
       arg_max(close, ts) AS close,
       arg_max(close, ts) / arg_min(open, ts) - 1 AS window_return,
       max(high) AS high,
       min(low) AS low,
       sum(volume) AS volume,
       count(*) AS bars
FROM bars
GROUP BY instrument
