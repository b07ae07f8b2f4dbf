-- Earthquakes per day (UTC) in the merged table: how many, the strongest, the mean depth, the latest.
-- An Iceberg table like its bronze table: each run commits one snapshot replacing the model's rows.
-- expect: row_count > 0
-- expect: unique(day)
-- expect: not_null(day)
SELECT
  CAST(time AS DATE) AS day,
  count(*) AS quakes,
  max(mag) AS max_mag,
  avg(depth) AS mean_depth_km,
  max(time) AS latest_quake
FROM pp_dw_bronze.usgs_earthquakes
GROUP BY CAST(time AS DATE)
