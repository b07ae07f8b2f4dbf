"""A zip's members are read as the dataset's declared format: members of another format fail the run, named."""

from __future__ import annotations

import io
import zipfile

from dwlib import bronze
from dwlib.config import DatasetConfig
from dwlib.lake import LocalLake

RUN = "20260101T000000Z"


def test_a_json_dataset_whose_zip_holds_only_csv_fails_naming_the_members(core, tmp_path):
    sample = tmp_path / "sample"
    sample.mkdir()
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:
        archive.writestr("orders.csv", "order_id,amount\n1,2\n")
    (sample / "orders.zip").write_bytes(packed.getvalue())
    config = DatasetConfig.model_validate(
        {"dataset": "shop-orders", "description": "orders", "data_size_category": "small", "landing": True,
         "format": "json"}  # fmt: skip
    )
    lake = LocalLake(tmp_path / "lake")
    ctx = bronze.JobContext(core=core, dataset=config, lake=lake, run_id=RUN, sample_dir=sample)
    summary = bronze.run_bronze(None, ctx)
    assert summary.status == "failed"
    assert "orders.csv" in summary.error and "cannot read as json" in summary.error
    assert not lake.data_files("bronze/")
