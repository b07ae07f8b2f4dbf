-- Countries and scheduled-service airports per continent, built on the per-country model.
-- expect: row_count > 0
-- expect: unique(continent)
SELECT continent,
       count(*) AS countries,
       sum(airports) AS airports,
       sum(large_airports) AS large_airports
FROM pp_dw_gold.airports_by_country
GROUP BY continent
