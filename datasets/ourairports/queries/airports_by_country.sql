-- Airports with scheduled service, per country, highest first.
SELECT iso_country, count(*) AS airports, max(elevation_ft) AS highest_ft
FROM pp_dw_bronze.ourairports
WHERE scheduled_service
GROUP BY iso_country
ORDER BY airports DESC, iso_country
