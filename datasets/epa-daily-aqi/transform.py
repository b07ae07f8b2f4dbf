"""epa-daily-aqi: keep US counties, add the five-digit county FIPS code.

The bronze job calls transform(df) after cleaning and typing (df has the typed data columns
and the meta_ columns) and before the checks, so the primary key (county_fips, date) and the
quality rules run on what it returns. Rows it drops are gone, not quarantined: the run summary
counts them as rows_dropped_by_transform. Built-in Spark functions only, no Python UDFs.
"""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

# EPA's county file also reports monitors across the border, under these "state" names.
NOT_US_STATES = ["Country Of Mexico", "Canada"]


def transform(df: DataFrame) -> DataFrame:
    return df.filter(~F.col("state_name").isin(NOT_US_STATES)).withColumn(
        "county_fips", F.concat(F.lpad("state_code", 2, "0"), F.lpad("county_code", 3, "0"))
    )
