-- materialized: dataset
-- layer: gold
-- key: ts
-- incremental: by_day
-- description: per second: spot, the nearest expiry's ATM strike and its CE/PE quotes
--
-- The option chain's ATM map. For every second of the option snapshots: the spot price
-- as of that second (the last spot tick at or before it: never a later one), the nearest
-- expiry quoted at that second, the strike closest to the spot (a tie goes to the lower
-- strike) and that strike's CE and PE best bid/ask. Rename bronze.banknifty_options /
-- bronze.banknifty_spot to your datasets.
WITH chain AS (
    SELECT ts, expiry, strike, opt_type, bid_price_0, ask_price_0
    FROM bronze.banknifty_options
),
nearest AS (
    SELECT ts, min(expiry) AS expiry FROM chain GROUP BY ts
),
strikes AS (
    SELECT DISTINCT c.ts, c.expiry, c.strike
    FROM chain c JOIN nearest n ON c.ts = n.ts AND c.expiry = n.expiry
),
with_spot AS (
    SELECT k.ts, k.expiry, k.strike, s.price AS spot
    FROM strikes k ASOF JOIN bronze.banknifty_spot s ON k.ts >= s.ts
),
atm AS (
    SELECT ts, expiry, strike, spot,
           row_number() OVER (PARTITION BY ts ORDER BY abs(strike - spot), strike) AS closeness
    FROM with_spot
)
SELECT a.ts, a.spot, a.expiry, a.strike AS atm_strike,
       ce.bid_price_0 AS ce_bid, ce.ask_price_0 AS ce_ask,
       pe.bid_price_0 AS pe_bid, pe.ask_price_0 AS pe_ask
FROM atm a
LEFT JOIN chain ce
    ON ce.ts = a.ts AND ce.expiry = a.expiry AND ce.strike = a.strike AND ce.opt_type = 'CE'
LEFT JOIN chain pe
    ON pe.ts = a.ts AND pe.expiry = a.expiry AND pe.strike = a.strike AND pe.opt_type = 'PE'
WHERE a.closeness = 1
