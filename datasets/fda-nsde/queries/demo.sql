-- Packages still marketed, per marketing category, with the first and last start dates.
SELECT marketing_category,
       count(*) AS packages,
       min(marketing_start_date) AS first_start,
       max(marketing_start_date) AS last_start
FROM pp_dw_bronze.fda_nsde
WHERE marketing_end_date IS NULL OR marketing_end_date > current_date
GROUP BY marketing_category
ORDER BY packages DESC
