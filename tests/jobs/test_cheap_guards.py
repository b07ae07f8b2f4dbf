"""A costly test behind a cheap guard (`transform._only_where`) is only as right as its guard: the guard must let
through every text its test would flag. Here Spark's own casts and the module's own regexes decide which texts
those are, over thousands of generated texts, hostile ones among them."""

from __future__ import annotations

import random

import pytest
from pyspark.sql import functions as F

from dwlib import transform

pytestmark = [pytest.mark.spark]

NUMBER_PARTS = "0123456789.eE+-xXpPdDfFaAnNiItyY \t\x0b\x00"
KNOWN_NUMBERS = [
    "12d", "5f", "5F", "1D", "0x1p3", "0X1P-3d", "0x.8p1", "NaN", "+NaN", "-Infinity", "Infinity", "inf", "-INF",
    "1e3\t", "\t1e3", "1e3\x0b", "1.", ".5", "+.5e-3f", "1e400", "1e-400", "0", "-0.0", "1_000", "１２", "٣",
    "12.50", "7", "-20.0", "3e",
]  # fmt: skip


def generated(parts: str, count: int, longest: int, seed: int) -> list[str]:
    pick = random.Random(seed)
    return ["".join(pick.choice(parts) for _ in range(pick.randint(1, longest))) for _ in range(count)]


def test_the_double_guard_lets_through_every_text_a_cast_reads_that_is_not_a_plain_number(spark):
    texts = KNOWN_NUMBERS + generated(NUMBER_PARTS, 20_000, 7, 1) + generated("0123456789.eEdDfFxXp+-\t", 20_000, 6, 2)
    df = spark.createDataFrame([(t,) for t in texts], "value string")
    text = F.trim(F.col("value"))
    missed = df.filter(
        text.cast("double").isNotNull() & ~text.rlike(transform._PLAIN_DOUBLE) & ~transform._may_not_be_plain(text)
    )
    assert missed.collect() == []
    # and the guard is a guard: plain numbers, most of a column, do not pass it
    plain = spark.createDataFrame([(t,) for t in ["12.50", "7", "-20.0", "1e5", "0.", ".5"]], "value string")
    assert plain.filter(transform._may_not_be_plain(F.trim(F.col("value")))).count() == 0
    # the texts the cast reads that are not plain numbers were among those tried
    odd = df.filter(text.cast("double").isNotNull() & ~text.rlike(transform._PLAIN_DOUBLE)).count()
    assert odd > 100


DATES = ["2024-03-10 02:30", "2024-03-10T02:30:00", "2024-03-10 02:30:00.123", "2024-3-1 2:30", "2024-03-10"]
ZONES = [
    "America/New_York", "PST", "UTC", "Z", "Etc/GMT+5", "+01:00", "-05:00", "GMT", "CEST", "Europe/Paris", "X",
    "America/Argentina/Buenos_Aires", "EST5EDT", "pst", "",
]  # fmt: skip
GAPS = ["", " ", "\t", "  "]


def test_the_zone_guard_lets_through_every_text_the_zone_pattern_finds_a_zone_in(spark):
    pick = random.Random(3)
    texts = [
        pick.choice(DATES) + pick.choice(GAPS) + pick.choice(ZONES) + pick.choice(["", "", "\t", "\x00", " "])
        for _ in range(20_000)
    ] + generated("0123456789-: TZ/APSxa+\t", 20_000, 12, 4)
    df = spark.createDataFrame([(t,) for t in texts], "value string")
    text = F.trim(F.col("value"))
    named = F.regexp_extract(text, transform._ZONE_NAME, 1) != ""
    assert df.filter(named & ~transform._may_name_a_zone(text)).collect() == []
    assert df.filter(named).count() > 1000
    bare = spark.createDataFrame([(t,) for t in ["2013-01-01 05:00:00", "2024-03-10T02:30:00.5"]], "value string")
    assert bare.filter(transform._may_name_a_zone(F.trim(F.col("value")))).count() == 0


def test_a_timestamp_text_of_the_usual_shape_is_one_the_whole_date_pattern_accepts(spark):
    """`_usual_date_shape` stands in for the whole-date regex where the cast reads the text: it must never say
    "whole" of a year alone, a year and month, a time alone or a short year."""
    pick = random.Random(5)
    shapes = ["2024", "2024-03", "2024-03-10", "2024-3-1", "+2024-03-10", "-2024-03-10", "202-03-10", "20245-03-10",
              "12:30", "T12:30", "12:30:00-05:00", "2024-03-10-05:00", "2024-0310", "\t2024-03-10", "2024-03-1"]  # fmt: skip
    times = ["", " 02:30", "T02:30:00", " 02:30:00.1234567", "02:30", " 12:30:00-05:00", "Z", " PST"]
    texts = [pick.choice(shapes) + pick.choice(times) for _ in range(5_000)] + generated(
        "0123456789-: T+", 30_000, 16, 6
    )
    df = spark.createDataFrame([(t,) for t in texts], "value string")
    text = F.trim(F.col("value"))
    whole = text.rlike(f"{transform._WHOLE_DATE}([T\\x00-\\x20]|$)")
    read = text.cast("timestamp").isNotNull()
    assert df.filter(read & transform._usual_date_shape(text) & ~whole).collect() == []
    assert df.filter(read & ~whole).count() > 100  # texts the cast reads without a whole date were tried
    assert df.filter(read & transform._usual_date_shape(text)).count() > 300
