-- materialized: view
-- description: per instrument and hour: last funding rate and mark price, open interest
--
-- Funding (markPrice stream / fundingRate history, bronze.binance_funding) and open
-- interest (bronze.binance_open_interest) on one hourly grid: the last value in each UTC
-- hour, and the change of open interest over the hour.
WITH funding AS (
    SELECT instrument, date_trunc('hour', ts) AS hour,
           arg_max(funding_rate, ts) AS funding_rate,
           arg_max(mark_price, ts) AS mark_price
    FROM bronze.binance_funding GROUP BY ALL
),
interest AS (
    SELECT instrument, date_trunc('hour', ts) AS hour,
           arg_max(open_interest, ts) AS open_interest,
           arg_max(open_interest, ts) - arg_min(open_interest, ts) AS open_interest_change
    FROM bronze.binance_open_interest GROUP BY ALL
)
SELECT coalesce(f.instrument, i.instrument) AS instrument,
       coalesce(f.hour, i.hour) AS hour,
       f.funding_rate, f.mark_price, i.open_interest, i.open_interest_change
FROM funding f
FULL OUTER JOIN interest i ON f.instrument = i.instrument AND f.hour = i.hour
