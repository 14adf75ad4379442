-- Volume and trade count per instrument and trading day, straight from the lake's files.
select
    instrument,
    date,
    sum(size) as volume,
    count(*) as trades
from {{ source('bronze', 'trades') }}
group by instrument, date
