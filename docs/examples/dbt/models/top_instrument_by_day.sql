-- The instrument with the most volume on each day (built on the model above).
select
    date,
    arg_max(instrument, volume) as top_instrument,
    max(volume) as volume
from {{ ref('daily_volume') }}
group by date
