-- Users and credits per plan, with how many signed up this year.
SELECT plan,
       count(*) AS users,
       sum(credits) AS credits,
       count_if(year(signed_up) = year(current_date)) AS signed_up_this_year
FROM pp_dw_bronze.app_users
GROUP BY plan
ORDER BY users DESC
