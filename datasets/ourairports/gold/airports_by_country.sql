-- Airports with scheduled service, per country: what a route planner looks at first.
-- expect: row_count > 0
-- expect: unique(iso_country)
-- expect: not_null(iso_country, continent)
SELECT continent,
       iso_country,
       count(*) AS airports,
       sum(CASE WHEN type = 'large_airport' THEN 1 ELSE 0 END) AS large_airports,
       max(elevation_ft) AS highest_ft
FROM pp_dw_bronze.ourairports
WHERE scheduled_service
GROUP BY continent, iso_country
