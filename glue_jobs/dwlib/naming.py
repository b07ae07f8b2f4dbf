"""Every resource name and lake path, by convention (DESIGN section 5).

Nothing else in the project formats a resource name or an S3 key: stacks, jobs, the
Lambda's infrastructure and the `dw` command all ask this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

LAYERS = ("bronze", "gold")
RUN_ID = re.compile(r"^\d{8}T\d{6}Z$")
RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"
LEDGER_ENTRY = re.compile(r"(?:^|/)run_id=(?P<run_id>\d{8}T\d{6}Z)(?:\.(?P<layer>raw|gold))?\.json$")


def new_run_id(now: datetime | None = None) -> str:
    """UTC `YYYYMMDDTHHMMSSZ`, the run id used when none is given."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(RUN_ID_FORMAT)


def next_run_id(run_id: str) -> str:
    """The run id one second later: how a run avoids an id another run of the same second took."""
    return (datetime.strptime(run_id, RUN_ID_FORMAT).replace(tzinfo=UTC) + timedelta(seconds=1)).strftime(RUN_ID_FORMAT)


def check_run_id(run_id: str) -> str:
    if not RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} is not of the form YYYYMMDDTHHMMSSZ, such as 20261121T060000Z")
    return run_id


def table_name(dataset: str) -> str:
    """Catalog table name of a dataset: Athena allows only lowercase letters, digits and `_`."""
    return dataset.replace("-", "_")


@dataclass(frozen=True)
class Naming:
    """Names and paths derived from the two prefixes of the core config."""

    etl_resource_prefix: str
    database_prefix: str

    @classmethod
    def of(cls, core) -> Naming:  # core: dwlib.config.CoreConfig
        return cls(core.etl_resource_prefix, core.database_prefix)

    # ---- AWS resources
    def bucket(self, account: str) -> str:
        return f"{self.etl_resource_prefix}-{account}"

    def access_log_bucket(self, account: str) -> str:
        return f"{self.etl_resource_prefix}-access-logs-{account}"

    def database(self, layer: str) -> str:
        self._layer(layer)
        return f"{self.database_prefix}_{layer}"

    def job(self, layer: str, dataset: str) -> str:
        self._layer(layer)
        return f"{self.etl_resource_prefix}-{layer}-{dataset}"

    def crawler(self, layer: str, dataset: str) -> str:
        return f"{self.job(layer, dataset)}-crawler"

    def state_machine(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-pipeline-{dataset}"

    def schedule(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-schedule-{dataset}"

    def export_function(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-export-{dataset}"

    def failure_rule(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-failures-{dataset}"

    def arrival_rule(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-arrival-{dataset}"

    def named_query(self, dataset: str, query: str) -> str:
        return f"{self.etl_resource_prefix}-{dataset}-{query}"

    @property
    def core_stack(self) -> str:
        return f"{self.etl_resource_prefix}-core"

    def dataset_stack(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-dataset-{dataset}"

    @property
    def job_role(self) -> str:
        return f"{self.etl_resource_prefix}-glue-job-role"

    def dataset_job_role(self, dataset: str) -> str:
        """The own role of a dataset whose source needs secrets (API auth); the others share `job_role`."""
        name = f"{self.etl_resource_prefix}-{dataset}-job-role"
        if len(name) > 64:
            raise ValueError(
                f"IAM role name {name!r} is {len(name)} characters, over IAM's 64: "
                f"shorten the dataset name {dataset!r} (its source needs its own role for secrets)"
            )
        return name

    @property
    def crawler_role(self) -> str:
        return f"{self.etl_resource_prefix}-glue-crawler-role"

    @property
    def security_configuration(self) -> str:
        return f"{self.etl_resource_prefix}-glue-security"

    @property
    def workgroup(self) -> str:
        return f"{self.etl_resource_prefix}-workgroup"

    @property
    def key_alias(self) -> str:
        return f"alias/{self.etl_resource_prefix}"

    @property
    def failure_topic(self) -> str:
        return f"{self.etl_resource_prefix}-failures"

    # ---- lake paths (keys relative to the bucket or the local lake root)
    @staticmethod
    def raw_dataset_prefix(dataset: str) -> str:
        return f"raw/{dataset}/"

    @staticmethod
    def raw_prefix(dataset: str, run_id: str) -> str:
        return f"raw/{dataset}/run_id={check_run_id(run_id)}/"

    @staticmethod
    def export_key(dataset: str, run_id: str) -> str:
        """Where the DynamoDB export Lambda writes a table's CSV."""
        return f"{Naming.raw_prefix(dataset, run_id)}{dataset}.csv"

    @staticmethod
    def bronze_prefix(dataset: str) -> str:
        return Naming.bronze_table_prefix(table_name(dataset))

    @staticmethod
    def bronze_table_prefix(table: str) -> str:
        """A bronze table's folder from its catalog name (gold models name tables, not datasets)."""
        return f"bronze/{table}/"

    @staticmethod
    def gold_dataset_prefix(dataset: str) -> str:
        return f"gold/{table_name(dataset)}/"

    def gold_prefix(self, dataset: str, model: str) -> str:
        return f"{self.gold_dataset_prefix(dataset)}{model}/"

    @staticmethod
    def quarantine_prefix(dataset: str, run_id: str) -> str:
        return f"quarantine/{dataset}/run_id={check_run_id(run_id)}/"

    @staticmethod
    def runs_prefix(dataset: str) -> str:
        return f"runs/{dataset}/"

    def run_summary_key(self, dataset: str, run_id: str, layer: str = "bronze") -> str:
        """Bronze keeps the plain name of DESIGN section 5; raw-only and gold summaries sit beside it."""
        if layer != "raw":
            self._layer(layer)
        suffix = "" if layer == "bronze" else f".{layer}"
        return f"{self.runs_prefix(dataset)}run_id={check_run_id(run_id)}{suffix}.json"

    def lock_key(self, dataset: str) -> str:
        """The lock a run of the dataset holds (one run per dataset at a time); not a ledger entry."""
        return f"{self.runs_prefix(dataset)}_lock.json"

    def publish_journal_key(self, dataset: str, target: str) -> str:
        """The journal of an unfinished publish of `target` (`bronze`, or `gold.{model}`).

        Under runs/, never inside the crawled bronze/ and gold/ folders.
        """
        return f"{self.runs_prefix(dataset)}_publish/{target}.json"

    @staticmethod
    def run_id_of_entry(key: str) -> tuple[str, str] | None:
        """(run id, layer) of a ledger entry key `runs/{dataset}/run_id=X[.layer].json`; None for other keys."""
        match = LEDGER_ENTRY.search(key)
        if not match:
            return None
        return match["run_id"], match["layer"] or "bronze"

    @staticmethod
    def staging_prefix(layer: str, dataset: str, run_id: str, part: str = "") -> str:
        """Work area of one run (unpacked inputs, new output before checks); never crawled."""
        tail = f"{part}/" if part else ""
        return f"staging/{layer}/{dataset}/run_id={check_run_id(run_id)}/{tail}"

    @staticmethod
    def etl_prefix(dataset: str) -> str:
        return f"etl/{dataset}/"

    def script_key(self, dataset: str, layer: str) -> str:
        self._layer(layer)
        return f"{self.etl_prefix(dataset)}glue/{layer}_job.py"

    def library_key(self, dataset: str) -> str:
        return f"{self.etl_prefix(dataset)}glue/{LIBRARY_ZIP}"

    def job_config_key(self, dataset: str) -> str:
        return f"{self.etl_prefix(dataset)}{JOB_CONFIG}"

    def transform_hook_key(self, dataset: str) -> str:
        """The dataset's optional `transform.py`, as the stack deploys it beside the job config."""
        return f"{self.etl_prefix(dataset)}{TRANSFORM_HOOK}"

    @staticmethod
    def athena_results_prefix() -> str:
        return "athena-results/"

    @staticmethod
    def _layer(layer: str) -> None:
        if layer not in LAYERS:
            raise ValueError(f"layer {layer!r} is not one of {', '.join(LAYERS)}")


LIBRARY_ZIP = "dwlib.zip"
JOB_CONFIG = "job_config.json"
TRANSFORM_HOOK = "transform.py"  # datasets/{dataset}/transform.py, deployed to etl/{dataset}/transform.py
