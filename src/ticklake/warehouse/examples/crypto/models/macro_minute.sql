-- materialized: view
-- description: per crypto 1m bar, each macro/FX instrument's close as of that minute
--
-- The crypto 1-minute bars (silver.bars_1m, from `ticklake bars build`) next to the
-- last close of every macro instrument (bronze.macro_1m, from `ticklake backfill http`)
-- known when the crypto bar closed: an ASOF JOIN on ts_end, so a macro bar that closes
-- after the crypto bar is never used (no look-ahead). One row per crypto bar and macro
-- instrument. Markets close (nights, weekends): macro_age_minutes says how stale the
-- value is; a crypto bar before a macro instrument's first bar has a null macro_close.
WITH pairs AS (
    SELECT c.*, m.macro_instrument
    FROM silver.bars_1m c
    CROSS JOIN (SELECT DISTINCT instrument AS macro_instrument FROM bronze.macro_1m) m
)
SELECT p.ts, p.ts_end, p.instrument, p.open, p.high, p.low, p.close, p.volume,
       p.macro_instrument,
       x.close AS macro_close,
       x.ts AS macro_ts,
       date_diff('minute', x.ts_end, p.ts_end) AS macro_age_minutes
FROM pairs p
ASOF LEFT JOIN bronze.macro_1m x
    ON p.macro_instrument = x.instrument AND p.ts_end >= x.ts_end
