"""One vocabulary of quality rules for both layers: bronze's config rules and gold's `-- expect:` lines
are the same rules, and mean the same on rows (bronze quarantines) and on a whole result (gold refuses)."""

from __future__ import annotations

import pytest

from dwlib import gold, quality
from dwlib.config import QualityRules


def test_bronze_config_rules_and_gold_expectations_are_one_vocabulary():
    config = QualityRules(not_null=["time"], unique=["code"], accepted_values={"status": ["reviewed", True, 3]})
    rules = quality.bronze_rules(["id"], config)
    assert [str(r) for r in rules] == [
        "primary_key(id)",
        "not_null(time)",
        "accepted_values(status: reviewed, true, 3)",
        "unique(code)",
    ]
    # every rule a dataset config can state, a gold model can state in the same words
    for rule in rules[1:]:
        assert quality.parse_rule(str(rule)) == rule
    sql = "-- expect: accepted_values(status: reviewed, 'automatic')\n-- expect: row_count >= 2\nSELECT 1"
    assert [str(e) for e in gold.parse_expectations(sql, "gold/m.sql")] == [
        "accepted_values(status: reviewed, automatic)",
        "row_count >= 2",
    ]


@pytest.mark.parametrize(
    "rule", ["accepted_values(status)", "accepted_values(status: )", "primary_key(id)", "rows > 1"]
)
def test_a_rule_gold_cannot_state_is_refused_naming_the_file_and_the_words_it_takes(rule):
    with pytest.raises(gold.GoldError) as caught:
        gold.parse_expectations(f"-- expect: {rule}\nSELECT 1", "datasets/x/gold/m.sql")
    assert str(caught.value) == (
        f"datasets/x/gold/m.sql: expectation {rule!r} is not understood; "
        "write row_count > N, unique(col), not_null(col) or accepted_values(col: a, b)"
    )


@pytest.mark.spark
def test_a_rule_means_the_same_on_rows_and_on_a_whole_result(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame(
        [(1, "reviewed", True), (2, "automatic", False), (2, "deleted", None), (None, None, True)],
        "id int, status string, flag boolean",
    )
    rules = quality.bronze_rules(
        ["id"], QualityRules(not_null=["flag"], accepted_values={"status": ["reviewed", "automatic"], "flag": [True]})
    )
    # bronze: the reasons a row is quarantined for, row by row
    reasons = df.select(
        *[F.when(cond, reason).alias(f"r{i}") for i, (cond, reason) in enumerate(quality.row_problems(rules))]
    ).collect()
    found = [sorted(r for r in row if r) for row in reasons]
    assert found == [
        [],
        ["flag: not an accepted value"],
        ["flag: null (not_null rule)", "status: not an accepted value"],
        ["id: primary key is null"],
    ]
    # gold: the same rules over the whole result
    assert quality.table_failures(df, tuple(rules), 4) == [
        "primary_key(id) (1 rows with nulls)",
        "primary_key(id) (1 repeated values)",
        "not_null(flag) (1 rows with nulls)",
        "accepted_values(status: reviewed, automatic) (1 rows with other values)",
        "accepted_values(flag: true) (1 rows with other values)",
    ]
    assert quality.table_failures(df.filter("id = 1"), tuple(rules), 1) == []


@pytest.mark.spark
def test_unique_ignores_rows_with_a_null_key_part_on_rows_and_on_a_whole_result(spark):
    """Bronze never rejects a row with a NULL unique column as a repeat; gold's unique() counts no NULL as a
    repeated value either, while primary_key still refuses the NULLs themselves."""
    df = spark.createDataFrame(
        [(1, "a", None), (2, None, "x"), (3, None, "x"), (4, "b", "y"), (5, "b", None)],
        "id int, code string, sub string",
    )
    assert quality.table_failures(df, quality.expectations("-- expect: unique(code)\nSELECT 1"), 5) == [
        "unique(code) (1 repeated values)"  # b twice; the two NULLs are no repeat
    ]
    assert quality.table_failures(df.filter("id < 4"), quality.expectations("-- expect: unique(code)\nSELECT 1"), 3) == []
    assert quality.table_failures(df, quality.expectations("-- expect: unique(code, sub)\nSELECT 1"), 5) == []
    assert quality.table_failures(df.filter("id < 4"), (quality.Rule("primary_key", ("code",)),), 3) == [
        "primary_key(code) (2 rows with nulls)",
        "primary_key(code) (1 repeated values)",
    ]


@pytest.mark.spark
def test_gold_accepted_numbers_compare_as_numbers_in_number_columns(spark):
    """`accepted_values(level: 1.0, 2.5)` holds for an int 1 and a decimal 2.50, as bronze's rule does."""
    df = spark.createDataFrame([(1, "2.50", "1")], "level int, amount string, code string").selectExpr(
        "level", "CAST(amount AS decimal(5,2)) AS amount", "code"
    )
    rules = quality.expectations(
        "-- expect: accepted_values(level: 1.0, 2)\n-- expect: accepted_values(amount: 2.5)\n"
        "-- expect: accepted_values(code: 1.0)\nSELECT 1"
    )
    assert quality.table_failures(df, rules, 1) == ["accepted_values(code: 1.0) (1 rows with other values)"]


@pytest.mark.spark
def test_an_accepted_number_past_38_digits_accepts_nothing_rather_than_failing_the_run(spark):
    from pyspark.sql import functions as F

    df = spark.createDataFrame([(1,), (100,)], "n int")
    rules = quality.bronze_rules([], QualityRules(accepted_values={"n": ["1e40", "1" * 42, 1]}))
    ((condition, _),) = quality.row_problems(rules, {"n": df.schema["n"].dataType})
    assert [r[0] for r in df.select(F.coalesce(condition, F.lit(False))).collect()] == [False, True]
