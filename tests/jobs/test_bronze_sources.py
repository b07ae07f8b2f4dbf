"""Bronze runs from the sources issue 16 named: a relative file on Glue, archives past their
limits, and a secret that must reach no run summary, whatever failed."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest

from dwlib import bronze
from dwlib.config import DatasetConfig
from dwlib.fetch import RetryPolicy
from dwlib.lake import LocalLake
from dwlib.secrets import LocalSecrets, env_name

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("bronze-run")]
ROOT = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, timeout=5.0)
RUN, LATER = "20260101T000000Z", "20260102T000000Z"
CSV = b"id,city\n1,Oslo\n2,Lima\n3,Pune\n"
USER_PASS = "svc-shop:pw-Q8+z/K4t7Rb2"


def dataset(**fields) -> DatasetConfig:
    base = {"dataset": "city-list", "description": "cities", "data_size_category": "small", "format": "csv"}
    return DatasetConfig.model_validate({**base, **fields})


def context(core, config, lake, run_id=RUN, **extra) -> bronze.JobContext:
    return bronze.JobContext(core=core, dataset=config, lake=lake, run_id=run_id, policy=FAST, **extra)


# ------------------------------------------------------------------ 13. a relative source on Glue


def test_a_relative_source_runs_on_glue_from_the_deployed_dataset_folder(spark, core, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes("etl/city-list/data/cities.csv", CSV)  # where the stack's BucketDeployment puts it
    ctx = context(core, dataset(source_url="data/cities.csv"), lake)  # dataset_dir=None: as on Glue

    plan = "\n".join(bronze.plan(ctx))
    summary = bronze.run_bronze(spark, ctx)

    assert "reachable" in plan and "etl/city-list/data/cities.csv" in plan and "NOT reachable" not in plan
    assert summary.status == "succeeded", summary.error
    assert summary.rows_kept == 3 and lake.read_bytes(f"raw/city-list/run_id={RUN}/cities.csv") == CSV


def test_a_relative_source_missing_from_the_deployment_names_where_it_looked(spark, core, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    summary = bronze.run_bronze(spark, context(core, dataset(source_url="data/cities.csv"), lake))
    assert summary.status == "failed"
    assert "etl/city-list/data/cities.csv does not exist" in summary.error and "make deploy" in summary.error


# ------------------------------------------------------------------ 12. archives past their limits


def test_an_archive_past_its_configured_limit_fails_and_keeps_bronze(spark, core, server, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    server.files["/cities.csv"] = CSV
    assert bronze.run_bronze(spark, context(core, dataset(source_url=server.url("/cities.csv")), lake)).rows_kept == 3
    before = {o.key: lake.read_bytes(o.key) for o in lake.list("bronze/")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cities.csv", CSV + b"4,Kyiv\n" * 20_000)
    server.files["/cities.zip"] = buffer.getvalue()
    config = dataset(source_url=server.url("/cities.zip"), archive={"max_unpacked_bytes": 50_000})

    summary = bronze.run_bronze(spark, context(core, config, lake, LATER))

    assert summary.status == "failed"
    assert "cities.zip" in summary.error and "archive.max_unpacked_bytes = 50000" in summary.error
    assert {o.key: lake.read_bytes(o.key) for o in lake.list("bronze/")} == before
    assert not lake.has_prefix("staging/")


# ------------------------------------------------------------------ 6. nothing secret in the run summary


class LeakyLake(LocalLake):
    """Copying a raw file out of the lake fails with a message that quotes the request's Authorization header."""

    def get_file(self, key: str, local: Path) -> None:
        raise OSError(f"copy of {key} failed; request had Authorization: Basic {base64.b64encode(USER_PASS.encode())}")


def test_no_form_of_a_secret_reaches_the_run_summary_whatever_fails(spark, core, server, tmp_path):
    def export(handler, query):
        if handler.headers.get("Authorization") == "Basic " + base64.b64encode(USER_PASS.encode()).decode():
            handler.plain(200, body=zipped)
        else:
            handler.plain(401)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("cities.csv", CSV)
    zipped = buffer.getvalue()
    server.routes["/cities.zip"] = export
    lake = LeakyLake(tmp_path / "lake")
    config = dataset(
        source_url=server.url("/cities.zip"), source_auth={"secret": "pp-dw/city-export", "scheme": "Basic"}
    )
    # Created from a file, the secret ends with a newline; it must still work, trimmed.
    secrets = LocalSecrets(tmp_path, environ={env_name("pp-dw/city-export"): USER_PASS + "\n"})

    summary = bronze.run_bronze(spark, context(core, config, lake, secrets=secrets))

    assert len(server.seen("/cities.zip")) == 1  # fetched with the trimmed credentials
    assert summary.status == "failed" and "OSError" in summary.error and summary.traceback
    ledger = json.dumps(lake.read_json(f"runs/city-list/run_id={RUN}.json"))
    shown = bronze.describe_outcome(summary)
    password = USER_PASS.split(":", 1)[1]
    encoded = base64.b64encode(USER_PASS.encode()).decode()
    for form in (USER_PASS, password, quote(password, safe=""), encoded, encoded[8:-4]):
        for where, text in (("ledger", ledger), ("error", summary.error), ("traceback", summary.traceback),
                            ("outcome", shown)):  # fmt: skip
            assert form not in text, f"{form!r} in the {where}"


# ------------------------------------------------------------------ keys that differ only by case


def records_file(tmp_path: Path, fmt: str, rows: list[dict]) -> Path:
    """A sample folder holding `rows` as one file of the format: a JSON array, JSON lines or Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sample = tmp_path / "sample"
    sample.mkdir()
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), sample / "a.parquet")
    elif fmt == "jsonl":
        (sample / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        (sample / "a.json").write_text(json.dumps(rows))
    return sample


CASED_ROWS = [{"id": 1, "Name": "x", "name": "y", "A": {"B": 1, "b": 2}}, {"id": 2, "Name": "z"}]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet"])
def test_keys_differing_only_by_case_are_two_columns_as_two_csv_headers_are(spark, core, tmp_path, fmt):
    """`Name` and `name` are two JSON keys (two Parquet columns): each keeps its values, the second as `name_2`,
    nested ones too, where Spark's case-insensitive default failed the run on the pair."""
    sample = records_file(tmp_path, fmt, CASED_ROWS)
    lake = LocalLake(tmp_path / "lake")
    config = dataset(format=fmt, landing=True, primary_key=["id"], columns={"name_2": "string"})
    summary = bronze.run_bronze(spark, context(core, config, lake, sample_dir=sample))

    assert summary.status == "succeeded", summary.error
    rows = spark.read.parquet(str(lake.path("bronze/city_list"))).select("id", "name", "name_2", "a_b", "a_b_2")
    # `name`, spelled as its clean name, keeps it; `Name` is `name_2`.
    assert sorted(tuple(r) for r in rows.collect()) == [(1, "y", "x", 1, 2), (2, None, "z", None, None)]
    assert summary.renamed_columns == {"Name": "name_2", "A.b": "a_b_2"}


# ------------------------------------------------------------------ null markers are CSV's


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet"])
def test_csv_null_markers_leave_json_and_parquet_values_alone(spark, core, tmp_path, fmt):
    """`"NA"` (Namibia) and `""` are values in JSON and Parquet, which say null themselves; both columns,
    declared and not."""
    rows = [{"id": 1, "code": "NA", "note": ""}, {"id": 2, "code": None, "note": "NA"}]
    sample = records_file(tmp_path, fmt, rows)
    lake = LocalLake(tmp_path / "lake")
    config = dataset(format=fmt, landing=True, columns={"code": "string"}, csv={"null_values": ["", "NA"]})
    summary = bronze.run_bronze(spark, context(core, config, lake, sample_dir=sample))

    assert summary.status == "succeeded", summary.error
    kept = spark.read.parquet(str(lake.path("bronze/city_list"))).select("id", "code", "note")
    assert sorted(tuple(r) for r in kept.collect()) == [(1, "NA", ""), (2, None, "NA")]


# ------------------------------------------------------------------ a .json file of several values


def json_run(spark, core, tmp_path: Path, data: bytes) -> bronze.RunSummary:
    """A run of one file `export.json` holding `data`, its format taken from its name."""
    sample = tmp_path / "sample"
    sample.mkdir()
    (sample / "export.json").write_bytes(data)
    lake = LocalLake(tmp_path / "lake")
    return bronze.run_bronze(spark, context(core, dataset(format=None, landing=True), lake, sample_dir=sample))


BIG = "x" * 300_000  # a first record past the 256 KB a CSV's header is looked for in


@pytest.mark.parametrize(
    "data",
    [
        b'{"id": 1}\n{"id": 2}\n{"id": 3}\n',
        b'[{"id": 1}]\n[{"id": 2}]',
        '\ufeff{\n  "id": 1\n}\n{\n  "id": 2\n}'.encode(),
        '{"id": 1}\n{"id": 2}\n{"id": 3}\n'.encode("utf-16"),
        b"{'id': 1, 's': 'a}'}\n{'id': 2}\n",
        f'{{"id": 1, "s": "{BIG}"}}\n{{"id": 2}}\n'.encode(),
    ],
    ids=["a record a line", "two arrays", "pretty-printed records", "utf-16", "single quotes", "a long first record"],
)
def test_a_json_file_of_several_values_fails_naming_the_format_to_set(spark, core, tmp_path, data):
    """Read whole, Spark keeps a file's first value and drops the rest: a run of 1 row from 3 said succeeded."""
    summary = json_run(spark, core, tmp_path, data)
    assert summary.status == "failed"
    assert "export.json holds several JSON values" in summary.error and '"format": "jsonl"' in summary.error


@pytest.mark.parametrize("text", ['[{"id": 1},\n {"id": 2}]\n', '{"id": 1, "items": [1, 2]}\n\n'])
def test_a_json_file_of_one_value_still_reads(spark, core, tmp_path, text):
    summary = json_run(spark, core, tmp_path, text.encode())
    assert summary.status == "succeeded", summary.error
    assert summary.rows_kept == text.count('"id"')


# ------------------------------------------------------------------ inferred numbers that are text


def test_undeclared_columns_with_leading_zeros_or_signs_stay_text(spark, core, tmp_path):
    """`007` and `7` are two keys and `02101` a zip code: inferred as numbers they became one key (one row
    quarantined as its duplicate) and `2101`; so did `٠٠٧` and `7`, `12d` and `12f`. A column whose text a
    number would not give back stays a string; plain numbers are still inferred."""
    sample = tmp_path / "sample"
    sample.mkdir()
    rows = [
        "sku,zip,phone,qty,price,code,size,pad",
        "7,02101,+4412345,1,1.5,\u0667,12d,7",
        "007,10001,5551234,2,2.25,\u0660\u0660\u0667,12f, 7",
        "8,00501,+1800,3,-0.5,7,12,7 ",
    ]
    (sample / "items.csv").write_text("\n".join(rows) + "\n")
    lake = LocalLake(tmp_path / "lake")
    config = dataset(landing=True, primary_key=["sku"])
    summary = bronze.run_bronze(spark, context(core, config, lake, sample_dir=sample))

    assert summary.status == "succeeded", summary.error
    assert (summary.rows_kept, summary.rows_rejected) == (3, 0)
    kept = spark.read.parquet(str(lake.path("bronze/city_list")))
    types = dict(kept.dtypes)
    assert [types[c] for c in ("sku", "zip", "phone", "qty", "price")] == [
        "string",
        "string",
        "string",
        "int",
        "double",
    ]
    # digits of another script, a Java float suffix, a space: text a number would not give back
    assert [types[c] for c in ("code", "size", "pad")] == ["string", "string", "string"]
    assert sorted(tuple(r) for r in kept.select("sku", "zip", "phone").collect()) == [
        ("007", "10001", "5551234"),
        ("7", "02101", "+4412345"),
        ("8", "00501", "+1800"),
    ]


# ------------------------------------------------------------------ rules naming columns the source lacks


def test_quality_rules_naming_absent_columns_fail_naming_each_field(spark, core, tmp_path):
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes("etl/city-list/data/cities.csv", CSV)
    quality = {"not_null": ["nosuch"], "unique": ["city", "zone"], "accepted_values": {"kind": ["a"]}}
    summary = bronze.run_bronze(spark, context(core, dataset(source_url="data/cities.csv", quality=quality), lake))
    assert summary.status == "failed"
    assert summary.error.startswith(
        "config names columns the source does not have: quality.not_null: nosuch; quality.unique: zone; "
        "quality.accepted_values: kind; the source's cleaned columns are: id, city"
    ), summary.error
    assert "_dw_" not in summary.error


# ------------------------------------------------------------------ accepted numbers


def test_accepted_numbers_compare_as_numbers_in_number_columns_and_as_text_in_others(spark, core, tmp_path):
    """`1.0` accepts an int 1 and `1.5` a decimal 1.50 (compared as text, `"1.0"` against `"1"`, every row was
    rejected); a text column still compares text: `1` does not accept `01`."""
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes(
        "etl/city-list/data/levels.csv",
        b"id,lvl,score,code\n1,1.50,0.1,1\n2,1.5,0.1,01\n3,1.25,0.1,1\n1,1.5,0.2,1\n",
    )
    config = dataset(
        source_url="data/levels.csv",
        columns={"id": "int", "lvl": "decimal(5,2)", "score": "double", "code": "string"},
        quality={
            "accepted_values": {"id": [1.0, 2], "lvl": [1.5], "score": [0.1], "code": [1]},
            "max_rejected_fraction": 1.0,
        },
    )
    summary = bronze.run_bronze(spark, context(core, config, lake))
    assert summary.status == "succeeded", summary.error
    assert summary.rows_kept == 1
    assert summary.rejected_by_reason == {
        "code: not an accepted value": 1,
        "id: not an accepted value": 1,
        "lvl: not an accepted value": 1,
        "score: not an accepted value": 1,
    }


@pytest.mark.parametrize(("encoding", "runs"), [("utf_8", False), ("no-such-charset", False), ("x-MacRoman", True)])
def test_a_csv_encoding_is_checked_against_java_s_charsets_before_reading(spark, core, tmp_path, encoding, runs):
    """Spark decodes with Java's charsets: Python's `utf_8` is none of them, Java's `x-MacRoman` is no Python
    name. A name Java lacks fails naming csv.encoding, before any read; one it has runs."""
    lake = LocalLake(tmp_path / "lake")
    lake.write_bytes("etl/city-list/data/cities.csv", CSV)
    summary = bronze.run_bronze(
        spark, context(core, dataset(source_url="data/cities.csv", csv={"encoding": encoding}), lake)
    )
    if runs:
        assert summary.status == "succeeded", summary.error
    else:
        assert summary.status == "failed"
        assert summary.error.startswith(f"csv.encoding {encoding!r} is not a charset Spark (Java) knows")


def test_a_retried_run_id_that_rejects_nothing_keeps_no_quarantine_of_the_attempt_before(spark, core, tmp_path):
    """The first attempt failed with 2 of 4 rows rejected; fixed and retried under the same run id it succeeds with
    none, and the quarantine must not still hold the first attempt's rows as this run's."""
    lake = LocalLake(tmp_path / "lake")
    config = dataset(source_url="data/ids.csv", columns={"id": "int"}, primary_key=["id"])
    lake.write_bytes("etl/city-list/data/ids.csv", b"id,v\n1,a\nx,b\ny,c\n4,d\n")
    assert bronze.run_bronze(spark, context(core, config, lake)).status == "failed"
    assert list(lake.list(f"quarantine/city-list/run_id={RUN}/"))
    lake.write_bytes("etl/city-list/data/ids.csv", b"id,v\n1,a\n2,b\n3,c\n4,d\n")
    summary = bronze.run_bronze(spark, context(core, config, lake))
    assert summary.status == "succeeded", summary.error
    assert summary.rows_rejected == 0
    assert not list(lake.list(f"quarantine/city-list/run_id={RUN}/"))
