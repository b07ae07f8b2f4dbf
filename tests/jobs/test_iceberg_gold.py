"""Gold models of an Iceberg dataset are Iceberg tables too: the example dataset (usgs-earthquakes) run
through the real commit path (Spark writes, PyIceberg commits to the SQLite catalog under the lake),
read back with `dw query` the way Athena reads them."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from dw.query import run_query
from dwlib import bronze, gold
from dwlib.config import DatasetConfig
from dwlib.lake import LocalLake
from dwlib.naming import Naming

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("iceberg")]
ROOT = Path(__file__).resolve().parents[2]
RUN1, RUN2, RUN3, RUN4 = "20261201T000000Z", "20261201T010000Z", "20261201T020000Z", "20261201T030000Z"
MODEL = "earthquakes_by_day"
GOLD = f"pp_dw_gold.{MODEL}"
SNAPSHOTS = f'SELECT snapshot_id, operation FROM pp_dw_gold."{MODEL}$snapshots" ORDER BY committed_at'


class Example:
    """A copy of datasets/usgs-earthquakes and a local lake to run it in."""

    def __init__(self, spark, core, tmp_path: Path):
        self.spark, self.core = spark, core
        self.folder = tmp_path / "usgs-earthquakes"
        shutil.copytree(ROOT / "datasets" / "usgs-earthquakes", self.folder)
        self.dataset = DatasetConfig.model_validate(json.loads((self.folder / "config.json").read_text()))
        self.lake = LocalLake(tmp_path / "lake")

    def context(self, run_id: str) -> bronze.JobContext:
        return bronze.JobContext(
            core=self.core, dataset=self.dataset, lake=self.lake, run_id=run_id,
            dataset_dir=self.folder, sample_dir=self.folder / "sample",
        )  # fmt: skip

    def bronze(self, run_id: str):
        summary = bronze.run_bronze(self.spark, self.context(run_id))
        assert summary.status == "succeeded", summary.error
        return summary

    def gold(self, run_id: str, models: dict[str, str] | None = None):
        return gold.run_gold(self.spark, self.context(run_id), models or gold.model_sources(self.folder))

    def query(self, sql: str):
        return run_query(sql, self.lake.root, Naming.of(self.core)).rows

    def revise_sample(self) -> None:
        """The next download: the first event revised (magnitude 1.8 to 2.9), one new event the same day."""
        sample = self.folder / "sample" / "all_day.csv"
        lines = sample.read_text().splitlines()
        new = lines[2].replace("hv740009173", "hv799999999").replace(",2.64,", ",5.5,")
        sample.write_text("\n".join([lines[0], lines[1].replace(",1.8,", ",2.9,"), new]) + "\n")


def model_sql() -> str:
    return (ROOT / "datasets" / "usgs-earthquakes" / "gold" / f"{MODEL}.sql").read_text()


def test_a_gold_model_is_an_iceberg_table_one_snapshot_per_run_that_travels_back(spark, core, tmp_path):
    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    first = example.gold(RUN1)
    assert first.status == "succeeded", first.error
    assert first.table_format == "iceberg" and first.crawler_command == ""
    told = gold.describe_gold(first)
    assert "no crawler is needed" in told and "start-crawler" not in told
    assert "of the Iceberg table pp_dw_gold.earthquakes_by_day" in told
    assert example.query(f"SELECT day, quakes, max_mag FROM {GOLD}") == [(date(2026, 12, 1), 24, 4.41)]
    # a timestamp column is written as Iceberg reads it (microseconds, not Spark's INT96)
    latest = example.query(f"SELECT epoch(latest_quake) FROM {GOLD}")
    assert latest == [(datetime(2026, 12, 1, 23, 0, tzinfo=UTC).timestamp(),)]

    example.revise_sample()
    example.bronze(RUN2)
    second = example.gold(RUN2)
    assert second.status == "succeeded", second.error
    assert example.query(f"SELECT sum(quakes), max(max_mag) FROM {GOLD}")[0] == (25, 5.5)
    snapshots = example.query(SNAPSHOTS)
    assert [op for _, op in snapshots] == ["append", "overwrite"]  # each run replaces the model's rows whole
    old_snapshot = snapshots[0][0]
    assert example.query(f"SELECT sum(quakes) FROM {GOLD} FOR VERSION AS OF {old_snapshot}") == [(24,)]
    ((first_at,),) = example.query(
        f'SELECT made_current_at FROM pp_dw_gold."{MODEL}$history" WHERE snapshot_id = {old_snapshot}'
    )
    at = first_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert example.query(f"SELECT sum(quakes) FROM {GOLD} FOR TIMESTAMP AS OF TIMESTAMP '{at} UTC'") == [(24,)]
    # the ledger keeps the commit of each model; the folder holds no Parquet beside the table's data/ and metadata/
    entry = example.lake.read_json(Naming.of(core).run_summary_key("usgs-earthquakes", RUN2, "gold"))
    assert entry["models"][0]["iceberg"]["snapshot_id"] == snapshots[1][0]
    assert entry["models"][0]["iceberg"]["operation"] == "overwrite"
    top = {p.name for p in (example.lake.root / "gold" / "usgs_earthquakes" / MODEL).iterdir()}
    assert top == {"data", "metadata"}
    files = example.query(f'SELECT file_path, record_count FROM pp_dw_gold."{MODEL}$files"')
    assert sum(count for _, count in files) == 1  # one day in the sample: the current snapshot's files only


def test_a_failing_expectation_adds_no_gold_snapshot(spark, core, tmp_path):
    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    assert example.gold(RUN1).status == "succeeded"
    rows = example.query(f"SELECT * FROM {GOLD}")
    strict = model_sql().replace("-- expect: row_count > 0", "-- expect: row_count > 1000")
    failed = example.gold(RUN2, {MODEL: strict})
    assert failed.status == "failed"
    assert "row_count > 1000 (found 1)" in failed.error and "the previous table is kept" in failed.error
    assert len(example.query(SNAPSHOTS)) == 1
    assert example.query(f"SELECT * FROM {GOLD}") == rows


def test_gold_schema_evolves_like_bronze_and_a_narrowing_fails_naming_the_column(spark, core, tmp_path):
    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    narrow = "SELECT CAST(time AS DATE) AS day, CAST(count(*) AS INT) AS quakes FROM pp_dw_bronze.usgs_earthquakes GROUP BY 1"
    assert example.gold(RUN1, {MODEL: narrow}).status == "succeeded"
    # widened (int to bigint) and a new column: applied
    wide = "SELECT CAST(time AS DATE) AS day, count(*) AS quakes, max(mag) AS max_mag FROM pp_dw_bronze.usgs_earthquakes GROUP BY 1"
    widened = example.gold(RUN2, {MODEL: wide})
    assert widened.status == "succeeded", widened.error
    assert widened.models[0]["iceberg"]["schema_change"] == {"added": ["max_mag"], "retyped": {"quakes": "int -> long"}}
    assert example.query(f"SELECT quakes, max_mag FROM {GOLD}") == [(24, 4.41)]
    # narrowed back (bigint to int): the run fails naming the column, the table is unchanged
    snapshots = example.query(SNAPSHOTS)
    refused = example.gold(RUN3, {MODEL: narrow})
    assert refused.status == "failed"
    assert "the column quakes of the Iceberg table pp_dw_gold.earthquakes_by_day is long" in refused.error
    assert f"(for a gold model: cast the column in gold/{MODEL}.sql)" in refused.error
    assert example.query(SNAPSHOTS) == snapshots
    kept = run_query(f"SELECT * FROM {GOLD}", example.lake.root, Naming.of(core))
    assert sorted(kept.columns) == ["day", "max_mag", "meta_run_id", "quakes"] and kept.rows[0][1] == 24


def test_a_gold_model_reads_an_iceberg_gold_model_at_its_current_snapshot(spark, core, tmp_path):
    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    assert example.gold(RUN1).status == "succeeded"
    example.revise_sample()
    example.bronze(RUN2)
    # the model's folder now holds the files of both snapshots; a reader of the folder would count 24 + 25
    total = f"SELECT sum(quakes) AS quakes FROM {GOLD}"
    summary = example.gold(RUN3, {MODEL: model_sql(), "earthquake_total": total})
    assert summary.status == "succeeded", summary.error
    assert example.query("SELECT quakes FROM pp_dw_gold.earthquake_total") == [(25,)]


STRONG = (
    "SELECT CAST(time AS DATE) AS day, count(*) AS quakes, max(mag) AS max_mag "
    "FROM pp_dw_bronze.usgs_earthquakes WHERE mag > {floor} GROUP BY 1"
)
DOWNSTREAM = {"strong_quakes": STRONG, "strong_total": "SELECT count(*) AS days FROM pp_dw_gold.strong_quakes"}


def downstream(floor: int) -> dict[str, str]:
    """The two models with strong_quakes' magnitude floor filled in (100: no row passes)."""
    return {name: sql.format(floor=floor) if "{floor}" in sql else sql for name, sql in DOWNSTREAM.items()}


def assert_reads_empty(example, core) -> None:
    """strong_quakes reads as an empty table with its columns, and the model reading it counts no days."""
    result = run_query("SELECT * FROM pp_dw_gold.strong_quakes", example.lake.root, Naming.of(core))
    assert result.rows == [] and result.columns == ["day", "quakes", "max_mag", "meta_run_id"]
    assert example.query("SELECT days FROM pp_dw_gold.strong_total") == [(0,)]


def test_an_empty_gold_result_replaces_the_rows_as_for_parquet_and_readers_see_an_empty_table(spark, core, tmp_path):
    """A model whose SELECT returns no rows (and whose expectations allow it) commits an `overwrite` snapshot
    with no rows, as a Parquet model's folder is replaced by an empty one: the previous rows are gone from the
    current snapshot, still there by time travel; `dw query` and the models reading it see an empty table with
    its columns, never the older snapshots' files left in the folder."""
    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    some = downstream(0)
    assert example.gold(RUN1, some).status == "succeeded"
    assert example.query("SELECT day, quakes FROM pp_dw_gold.strong_quakes") == [(date(2026, 12, 1), 24)]
    none = downstream(100)
    emptied = example.gold(RUN2, none)
    assert emptied.status == "succeeded", emptied.error
    by_model = {m["name"]: m for m in emptied.models}
    assert by_model["strong_quakes"]["rows"] == 0
    assert by_model["strong_quakes"]["iceberg"]["operation"] == "overwrite"
    assert by_model["strong_quakes"]["iceberg"]["files_added"] == 0
    assert by_model["strong_quakes"]["iceberg"]["files_removed"] >= 1
    assert "0 rows at gold/usgs_earthquakes/strong_quakes/" in gold.describe_gold(emptied)
    assert_reads_empty(example, core)
    snapshots = example.query('SELECT snapshot_id, operation FROM pp_dw_gold."strong_quakes$snapshots"')
    assert [op for _, op in snapshots] == ["append", "overwrite"]
    assert example.query(f"SELECT quakes FROM pp_dw_gold.strong_quakes FOR VERSION AS OF {snapshots[0][0]}") == [(24,)]
    empty = f"SELECT count(*) FROM pp_dw_gold.strong_quakes FOR VERSION AS OF {snapshots[1][0]}"
    assert example.query(empty) == [(0,)]
    assert example.query('SELECT count(*) FROM pp_dw_gold."strong_quakes$files"') == [(0,)]
    refilled = example.gold(RUN3, some)
    assert refilled.status == "succeeded", refilled.error
    assert example.query("SELECT quakes FROM pp_dw_gold.strong_quakes") == [(24,)]
    assert example.query("SELECT days FROM pp_dw_gold.strong_total") == [(1,)]


def test_a_gold_model_empty_from_its_first_run_is_an_empty_table_with_its_columns(spark, core, tmp_path):
    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    none = downstream(100)
    first = example.gold(RUN1, none)
    assert first.status == "succeeded", first.error
    assert_reads_empty(example, core)
    assert len(example.query('SELECT snapshot_id FROM pp_dw_gold."strong_quakes$snapshots"')) == 1


def test_an_empty_gold_result_of_a_parquet_dataset_also_replaces_the_rows(spark, core, tmp_path):
    """The behaviour the Iceberg model follows: a Parquet model's empty result replaces its folder with an empty
    table (one file with the columns), which `dw query` and the models reading it see as no rows."""
    example = Example(spark, core, tmp_path)
    example.dataset = example.dataset.model_copy(
        update={"table_format": "parquet", "load_mode": "full", "partition_by": []}
    )
    example.bronze(RUN1)
    some = downstream(0)
    assert example.gold(RUN1, some).status == "succeeded"
    none = downstream(100)
    emptied = example.gold(RUN2, none)
    assert emptied.status == "succeeded", emptied.error
    assert_reads_empty(example, core)


def test_a_column_spark_knows_is_never_null_is_added_to_a_gold_table_as_an_optional_column(spark, core, tmp_path):
    """`count(*) * 2` and a literal are columns Spark writes as required; Iceberg adds no required column to a
    table that has rows, so the model's new columns are added as optional ones."""
    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    base = "SELECT CAST(time AS DATE) AS day, count(*) AS quakes{more} FROM pp_dw_bronze.usgs_earthquakes GROUP BY 1"
    assert example.gold(RUN1, {MODEL: base.format(more="")}).status == "succeeded"
    grown = example.gold(RUN2, {MODEL: base.format(more=", count(*) * 2 AS doubled, 'usgs' AS source")})
    assert grown.status == "succeeded", grown.models
    assert grown.models[0]["iceberg"]["schema_change"] == {"added": ["doubled", "source"], "retyped": {}}
    assert example.query(f"SELECT day, quakes, doubled, source FROM {GOLD}") == [(date(2026, 12, 1), 24, 48, "usgs")]


def test_a_gold_model_reads_array_struct_and_map_columns_of_an_iceberg_gold_model(spark, core, tmp_path):
    """A model is read at its table's schema, nested columns too (their files say an element may be null)."""
    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    nested = (
        "SELECT collect_list(id) AS ids, named_struct('strongest', max(mag)) AS top, map('quakes', count(*)) AS counts "
        "FROM pp_dw_bronze.usgs_earthquakes"
    )
    reader = "SELECT size(ids) AS ids, top.strongest AS strongest, counts['quakes'] AS quakes FROM pp_dw_gold.quake_ids"
    summary = example.gold(RUN1, {"quake_ids": nested, "quake_id_count": reader})
    assert summary.status == "succeeded", summary.models
    assert example.query("SELECT ids, strongest, quakes FROM pp_dw_gold.quake_id_count") == [(24, 4.41, 24)]


def test_a_column_spark_wrote_as_required_that_the_model_stops_selecting_stays_and_reads_null(
    spark, core, tmp_path, capsys
):
    """count(*), a literal and meta_run_id are written by Spark as never null; the model's table promises no
    such thing, so a model that stops selecting them commits, run after run, and the columns read NULL."""
    from dwlib import iceberg

    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    full = (
        "SELECT CAST(time AS DATE) AS day, count(*) AS quakes, 1 AS one FROM pp_dw_bronze.usgs_earthquakes GROUP BY 1"
    )
    assert example.gold(RUN1, {MODEL: full}).status == "succeeded"
    table = iceberg.local_catalog(example.lake.root).load_table(("pp_dw_gold", MODEL))
    assert [f.name for f in table.schema().fields if f.required] == []
    fewer = "SELECT CAST(time AS DATE) AS day FROM pp_dw_bronze.usgs_earthquakes GROUP BY 1"
    for run_id in (RUN2, RUN3):
        summary = example.gold(run_id, {MODEL: fewer, "reader": f"SELECT * FROM {GOLD}"})
        assert summary.status == "succeeded", summary.models
        assert example.query(f"SELECT day, quakes, one, meta_run_id FROM {GOLD}") == [
            (date(2026, 12, 1), None, None, run_id)
        ]
        assert example.query("SELECT quakes, one FROM pp_dw_gold.reader") == [(None, None)]
    assert "Mismatch" not in capsys.readouterr().out


def test_a_table_created_with_required_columns_makes_them_optional_when_a_model_stops_selecting_them(
    spark, core, tmp_path, monkeypatch
):
    """A table an earlier version created with Spark's required flags: its next commit makes them optional."""
    from dwlib import iceberg

    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    monkeypatch.setattr(iceberg, "_all_optional", lambda schema: schema, raising=False)  # as tables were made
    full = "SELECT CAST(time AS DATE) AS day, count(*) AS quakes FROM pp_dw_bronze.usgs_earthquakes GROUP BY 1"
    assert example.gold(RUN1, {MODEL: full}).status == "succeeded"
    table = iceberg.local_catalog(example.lake.root).load_table(("pp_dw_gold", MODEL))
    assert [f.name for f in table.schema().fields if f.required] == ["quakes", "meta_run_id"]
    monkeypatch.undo()
    fewer = "SELECT CAST(time AS DATE) AS day FROM pp_dw_bronze.usgs_earthquakes GROUP BY 1"
    summary = example.gold(RUN2, {MODEL: fewer})
    assert summary.status == "succeeded", summary.models
    assert example.query(f"SELECT day, quakes FROM {GOLD}") == [(date(2026, 12, 1), None)]
    assert [f.name for f in table.refresh().schema().fields if f.required] == []


def test_data_files_that_do_not_fit_the_table_fail_naming_the_columns_without_pyicebergs_dump(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.schema import Schema
    from pyiceberg.types import LongType, NestedField, StringType

    from dwlib import iceberg

    cat = iceberg.local_catalog(tmp_path, create=True)
    cat.create_namespace("db")
    schema = Schema(NestedField(1, "day", StringType(), required=False), NestedField(2, "quakes", LongType(), True))
    table = cat.create_table(("db", "t"), schema=schema)
    path = tmp_path / "part-0.parquet"
    pq.write_table(pa.table({"day": ["2026-12-01"]}), path)
    with pytest.raises(iceberg.IcebergError) as refused:
        iceberg._data_files_of(table.metadata, [f"file://{path}"], table.io, "db.t")
    assert str(refused.value).startswith("the new data files do not fit the Iceberg table db.t: quakes (required long")
    assert "The table is unchanged" in str(refused.value)
    assert capsys.readouterr().out == ""


def test_a_column_alias_changing_only_in_case_is_the_same_column_spelled_as_first(spark, core, tmp_path):
    """`AS Day` then `AS day`: one column (Athena reads names case-insensitively and cannot read a table with
    both), spelled `Day` in the table and in the new files, holding the new run's values."""
    import pyarrow.parquet as pq

    from dwlib import iceberg

    example = Example(spark, core, tmp_path)
    example.bronze(RUN1)
    model = (
        "SELECT CAST(time AS DATE) AS {day}, count(*) AS {quakes}, {more} FROM pp_dw_bronze.usgs_earthquakes GROUP BY 1"
    )
    first = model.format(day="Day", quakes="quakes", more="named_struct('Top', max(mag)) AS s")
    assert example.gold(RUN1, {MODEL: first}).status == "succeeded"
    second = model.format(day="day", quakes="QUAKES", more="named_struct('top', max(mag)) AS S")
    summary = example.gold(RUN2, {MODEL: second, "reader": f"SELECT day, s.top AS top FROM {GOLD}"})
    assert summary.status == "succeeded", summary.models
    assert summary.models[0]["iceberg"]["schema_change"] == {"added": [], "retyped": {}}
    table = iceberg.local_catalog(example.lake.root).load_table(("pp_dw_gold", MODEL))
    assert [f.name for f in table.schema().fields] == ["Day", "quakes", "s", "meta_run_id"]
    assert str(table.schema().find_field("s").field_type) == "struct<5: Top: optional double>"
    for path in iceberg.current_files(table):  # Athena maps a file's columns to the table's by name
        assert pq.read_schema(path.removeprefix("file://")).names == ["Day", "quakes", "s", "meta_run_id"]
    rows = example.query(f"SELECT day, quakes, s.top, meta_run_id FROM {GOLD}")
    assert rows == [(date(2026, 12, 1), 24, 4.41, RUN2)]
    assert example.query("SELECT day, top FROM pp_dw_gold.reader") == [(date(2026, 12, 1), 4.41)]


def test_new_columns_differing_only_in_case_fail_naming_them(spark, tmp_path):
    """Spark refuses such columns in a model's SELECT; a Parquet or JSON source read case-sensitively, or a
    transform hook, may still write them: the commit refuses them rather than make a table Athena cannot read."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyiceberg.io import load_file_io

    from dwlib import iceberg

    lake = LocalLake(tmp_path / "lake")
    staged = "staging/gold/m/"
    lake.path(staged).mkdir(parents=True)
    nested = pa.array([{"mag": 1.0, "Mag": 2.0}], pa.struct([("mag", pa.float64()), ("Mag", pa.float64())]))
    for columns, named in (({"Day": [1], "day": [2]}, "Day and day"), ({"s": nested}, "s.mag and s.Mag")):
        pq.write_table(pa.table(columns), lake.path(staged + "part-0.parquet"))
        with pytest.raises(iceberg.IcebergError) as refused:
            iceberg._respelled(spark, lake, load_file_io({}), None, staged, "pp_dw_gold.m")
        assert f"the new data has the columns {named}, which differ only in case" in str(refused.value)
        assert "Rename one of them" in str(refused.value) and "The table is unchanged" in str(refused.value)
