"""Nested records in bronze: structs become snake_case columns, arrays stay arrays unless exploded."""

from __future__ import annotations

import json

import pytest

from dwlib import transform

pytestmark = pytest.mark.spark


def frame(spark, tmp_path, *records: dict):
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return spark.read.json(str(path))


def types(df) -> dict[str, str]:
    return {f.name: f.dataType.simpleString() for f in df.schema.fields}


def test_structs_flatten_recursively_and_arrays_stay_arrays(spark, tmp_path):
    df = frame(
        spark,
        tmp_path,
        {
            "id": 1,
            "address": {"city": "Lyon", "zipCode": "69001", "geo": {"lat": 45.76, "lon": 4.83}},
            "tags": ["a", "b"],
            "lines": [{"sku": "x"}],
        },
    )
    flat = transform.flatten(df)
    assert types(flat) == {
        "address_city": "string",
        "address_geo_lat": "double",
        "address_geo_lon": "double",
        "address_zip_code": "string",
        "id": "bigint",
        "lines": "array<struct<sku:string>>",
        "tags": "array<string>",
    }
    row = flat.first().asDict(recursive=True)
    assert row["address_city"] == "Lyon" and row["address_geo_lat"] == 45.76 and row["tags"] == ["a", "b"]


def test_name_collisions_are_resolved_like_clean_names(spark, tmp_path):
    df = frame(spark, tmp_path, {"address_city": "top", "address": {"city": "nested"}, "a.b": 1, "meta_run_id": 2})
    flat = transform.flatten(df)
    # Spark orders inferred JSON fields by name: `a.b`, `address`, `address_city`, `meta_run_id`
    # `address_city`, spelled as its clean name, keeps it; the nested `address.city` is numbered.
    assert flat.columns == ["a_b", "address_city_2", "address_city", "meta_run_id_2"]
    row = flat.first()
    assert (row["address_city"], row["address_city_2"], row["a_b"]) == ("top", "nested", 1)


def test_explode_multiplies_rows_and_flattens_struct_elements(spark, tmp_path):
    df = frame(
        spark,
        tmp_path,
        {"order": 1, "items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], "tags": ["x", "y"]},
        {"order": 2, "items": [], "tags": ["z"]},
        {"order": 3, "items": [{"sku": "c", "qty": 5}], "tags": []},
    )
    flat = transform.flatten(df, ["items"])
    rows = sorted((r["order"], r["items_sku"], r["items_qty"], r["tags"]) for r in flat.collect())
    assert rows == [
        (1, "a", 1, ["x", "y"]),
        (1, "b", 2, ["x", "y"]),
        (2, None, None, ["z"]),  # an empty array keeps its record once
        (3, "c", 5, []),
    ]
    both = transform.flatten(df, ["items", "tags"])
    assert both.count() == 2 * 2 + 1 * 1 + 1 * 1
    assert types(both)["tags"] == "string"


def test_explode_of_a_missing_or_scalar_column_says_which_arrays_exist(spark, tmp_path):
    df = frame(spark, tmp_path, {"id": 1, "items": [1, 2], "meta": {"labels": ["a"]}})
    with pytest.raises(
        ValueError,
        match=r"'lines', which is not in the source; array columns after flattening: "
        r"items, meta_labels",
    ):
        transform.flatten(df, ["lines"])
    with pytest.raises(ValueError, match=r"'id', which is a bigint, not an array"):
        transform.flatten(df, ["id"])
    assert transform.flatten(df, ["meta_labels"]).first()["meta_labels"] == "a"


def test_flat_frames_are_left_alone(spark, tmp_path):
    df = frame(spark, tmp_path, {"id": 1, "name": "x"})
    assert transform.flatten(df) is df
