"""Every resource name and lake path, by convention (DESIGN section 5).

Nothing else in the project formats a resource name or an S3 key: stacks, jobs, the
Lambda's infrastructure and the `dw` command all ask this module.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

LAYERS = ("bronze", "gold")
RUN_ID = re.compile(r"^\d{8}T\d{6}Z$")
RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"
LEDGER_ENTRY = re.compile(r"(?:^|/)run_id=(?P<run_id>\d{8}T\d{6}Z)(?:\.(?P<layer>raw|gold))?\.json$")


# A stage (`cdk deploy -c stage=dev`, `dw --stage dev`) is folded into both prefixes, so every physical
# name of a staged copy differs from the default one's. Validation measures every name as if the stage
# had MAX_STAGE_LENGTH characters, so a dataset it accepts fits every limit in every stage.
MAX_STAGE_LENGTH = 8
STAGE = re.compile(rf"^[a-z][a-z0-9]{{0,{MAX_STAGE_LENGTH - 1}}}$")
LONGEST_STAGE = "s" * MAX_STAGE_LENGTH
DEFAULT_STAGE_TAG = "default"  # the `stage` tag of the copy deployed without a stage


def check_stage(stage: str | None) -> str:
    """'' (the default stage) or a valid stage name; ValueError says what a stage name may be."""
    if stage is None or stage == "":
        return ""
    if not isinstance(stage, str) or not STAGE.match(stage):
        raise ValueError(
            f"stage {stage!r} is not a stage name: use 1 to {MAX_STAGE_LENGTH} lowercase letters and digits, "
            f"starting with a letter (such as dev or prod); the limit keeps every name within its service's "
            f"limit (the EventBridge rule {{prefix}}-{{stage}}-job-failures-{{dataset}} is the tightest, 64)"
        )
    if stage == DEFAULT_STAGE_TAG:
        raise ValueError(
            f"stage {stage!r} is the name the copy without a stage goes by (its `stage` tag), so the two "
            "copies could not be told apart in cost reports; pick another stage name"
        )
    words = name_words()
    if stage in words:
        raise ValueError(
            f"stage {stage!r} is a word the default stage's names use right after the prefix "
            f"({words[stage]}), so names of the two copies side by side could be equal; pick another stage "
            f"name (not one of {', '.join(sorted(words))})"
        )
    return stage


@functools.cache
def name_words() -> dict[str, str]:
    """{word: an example name} for every fixed word that follows the prefix in a name the stacks create.

    A stage is folded in right after the prefix (`pp-dw-dev-…`) and holds no `-`: two stages' names can
    only be equal if one is the default stage and the other stage's name is such a word (`pp-dw-alarm-…`)
    or the first word of a dataset name (names that start with the dataset: dwlib.config.cross_stage_problems).
    """
    probe = Naming("PREFIX", "DBPREFIX")
    names = [r.name for r in probe.core_resources()]
    names += [r.name for r in probe.dataset_resources("DATASET", models=["MODEL"], queries=["QUERY"], own_role=True,
                                                      schedule=True, export=True, arrival=True)]  # fmt: skip
    names += [probe.alarm("DATASET", "KIND"), probe.dashboard, probe.metrics_namespace]
    words: dict[str, str] = {}
    for name in names:
        if "PREFIX-" not in name:
            continue
        rest = name.split("PREFIX-", 1)[1]
        if rest.startswith(("DATASET", ACCOUNT_PLACEHOLDER)):
            continue
        words.setdefault(
            rest.split("-", 1)[0],
            name.replace("PREFIX", "{prefix}").replace("DATASET", "{dataset}").replace("KIND", "{kind}"),
        )
    return words


def new_run_id(now: datetime | None = None) -> str:
    """UTC `YYYYMMDDTHHMMSSZ`, the run id used when none is given."""
    return (now or datetime.now(UTC)).astimezone(UTC).strftime(RUN_ID_FORMAT)


def next_run_id(run_id: str) -> str:
    """The run id one second later: how a run avoids an id another run of the same second took."""
    return (datetime.strptime(run_id, RUN_ID_FORMAT).replace(tzinfo=UTC) + timedelta(seconds=1)).strftime(RUN_ID_FORMAT)


def check_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} is not of the form YYYYMMDDTHHMMSSZ, such as 20261121T060000Z")
    try:
        datetime.strptime(run_id, RUN_ID_FORMAT)
    except ValueError:
        raise ValueError(
            f"run id {run_id!r} is not a moment in time (month 01-12, a day the month has, hour 00-23, minute and "
            "second 00-59): use YYYYMMDDTHHMMSSZ in UTC, such as 20261121T060000Z"
        ) from None
    return run_id


@dataclass(frozen=True)
class Limit:
    """A name or description length AWS enforces, and what it names.

    Lengths are UTF-8 bytes (Glue and CloudFormation count bytes; for the ASCII names the stacks
    build, bytes are characters), or UTF-16 bytes where the CDK measures that way at synth time.
    """

    what: str
    max_length: int
    encoding: str = "utf-8"

    def size(self, text: str) -> int:
        return len(text.encode(self.encoding))

    @property
    def unit(self) -> str:
        return "bytes (UTF-8)" if self.encoding == "utf-8" else "bytes (UTF-16, as the CDK counts them)"


# The service limits the names and descriptions the stacks create must fit, from each service's API
# reference. Kinds ending in "_description" are checked for length only; every other kind is also a
# namespace in which two owners may not share a name.
LIMITS: dict[str, Limit] = {
    "s3_bucket": Limit("S3 bucket name", 63),
    "glue_database": Limit("Glue database name", 255),
    "glue_table": Limit("Glue table name", 255),
    "glue_column": Limit("Glue column name", 255),
    "glue_job": Limit("Glue job name", 255),
    "glue_job_description": Limit("Glue job description", 2048),
    "glue_crawler": Limit("Glue crawler name", 255),
    "glue_crawler_description": Limit("Glue crawler description", 2048),
    "glue_security_configuration": Limit("Glue security configuration name", 255),
    "state_machine": Limit("Step Functions state machine name", 80),
    "log_group": Limit("CloudWatch log group name", 512),
    "events_rule": Limit("EventBridge rule name", 64),
    "events_rule_description": Limit("EventBridge rule description", 512),
    "schedule": Limit("EventBridge Scheduler schedule name", 64),
    "schedule_description": Limit("EventBridge Scheduler schedule description", 512),
    "iam_role": Limit("IAM role name", 64),
    "iam_role_description": Limit("IAM role description", 1000),
    "lambda_function": Limit("Lambda function name", 64),
    "lambda_function_description": Limit("Lambda function description", 256),
    "named_query": Limit("Athena named query name", 128),
    "named_query_description": Limit("Athena named query description", 1024),
    "athena_workgroup": Limit("Athena workgroup name", 128),
    "sns_topic": Limit("SNS topic name", 256),
    "kms_alias": Limit("KMS alias name", 256),
    "stack": Limit("CloudFormation stack name", 128),
    # CloudFormation allows 1024 UTF-8 bytes; the CDK refuses more than 1024 UTF-16 bytes, which is stricter.
    "stack_description": Limit("CloudFormation stack description", 1024, "utf-16-le"),
}
# Bucket names end with the 12-digit account id, known only at deploy time.
ACCOUNT_PLACEHOLDER = "123456789012"


def fit(kind: str, text: str) -> str:
    """A generated description cut to its service limit (the names it lists can grow without bound)."""
    limit = LIMITS[kind]
    if limit.size(text) <= limit.max_length:
        return text
    text = text[: limit.max_length]  # never more characters than bytes
    while limit.size(text + "...") > limit.max_length:
        text = text[:-1]
    return text + "..."


def query_construct_id(stem: str) -> str:
    """The CDK construct id of the Athena named query of `queries/{stem}.sql` (unique per stack)."""
    return f"Query{stem.title().replace('_', '').replace('-', '')}"


@dataclass(frozen=True)
class Resource:
    """One physical name the stacks create, and where it comes from.

    `kind` is a LIMITS key; `scope` narrows its namespace (a table's database); `file` and `field`
    are where the user chose `part`, the piece of the name they can change.
    """

    kind: str
    name: str
    owner: str
    file: str
    field: str
    part: str
    scope: str = ""


def table_name(dataset: str) -> str:
    """Catalog table name of a dataset: Athena allows only lowercase letters, digits and `_`."""
    return dataset.replace("-", "_")


@dataclass(frozen=True)
class Naming:
    """Names and paths derived from the two prefixes of the core config."""

    etl_resource_prefix: str
    database_prefix: str
    stage: str = ""  # already folded into both prefixes; kept for tags and messages

    @classmethod
    def of(cls, core, stage: str | None = None) -> Naming:  # core: dwlib.config.CoreConfig
        """The names of the default stage, or of `stage` (`{prefix}-{stage}`, `{database_prefix}_{stage}`)."""
        stage = check_stage(stage)
        if not stage:
            return cls(core.etl_resource_prefix, core.database_prefix)
        return cls(f"{core.etl_resource_prefix}-{stage}", f"{core.database_prefix}_{stage}", stage)

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

    def job_failure_rule(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-job-failures-{dataset}"

    def arrival_rule(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-arrival-{dataset}"

    def named_query(self, dataset: str, query: str) -> str:
        return f"{self.etl_resource_prefix}-{dataset}-{query}"

    @property
    def core_stack(self) -> str:
        return f"{self.etl_resource_prefix}-core"

    def dataset_stack(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-dataset-{dataset}"

    @staticmethod
    def dataset_stack_description(dataset: str, description: str) -> str:
        return f"{dataset}: {description}"

    @property
    def job_role(self) -> str:
        return f"{self.etl_resource_prefix}-glue-job-role"

    def dataset_job_role(self, dataset: str) -> str:
        """The own role of a dataset whose source needs secrets (API auth); the others share `job_role`."""
        name = self.dataset_job_role_name(dataset)
        if len(name) > LIMITS["iam_role"].max_length:
            raise ValueError(
                f"IAM role name {name!r} is {len(name)} characters, over IAM's 64: "
                f"shorten the dataset name {dataset!r} (its source needs its own role for secrets)"
            )
        return name

    def dataset_job_role_name(self, dataset: str) -> str:
        return f"{self.etl_resource_prefix}-{dataset}-job-role"

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

    # ---- operations: metrics, alarms, dashboard, run history (stacks/monitoring.py, dwlib/metrics.py)
    @property
    def metrics_namespace(self) -> str:
        """The CloudWatch namespace the jobs publish run metrics to (a stage's prefix gives its own)."""
        return f"{self.etl_resource_prefix}/pipeline"

    def alarm(self, dataset: str, kind: str) -> str:
        # "-alarm-" after the prefix: `{prefix}-alarm-*` then matches this stage's alarms and not another
        # stage's (`pp-dw-dev-…` would match `pp-dw-*`), so the topic policy can name exactly its own.
        return f"{self.etl_resource_prefix}-alarm-{dataset}-{kind}"

    @property
    def dashboard(self) -> str:
        return f"{self.etl_resource_prefix}-lake"

    def dashboard_page(self, page: int) -> str:
        """The stage's dashboard, then `-2`, `-3`, ... for the datasets a page cannot hold (stacks/monitoring.py)."""
        return self.dashboard if page == 1 else f"{self.dashboard}-{page}"

    @property
    def freshness_function(self) -> str:
        """Publishes each watched dataset's hours since its last success, hourly (stacks/monitoring.py)."""
        return f"{self.etl_resource_prefix}-freshness"

    @property
    def freshness_rule(self) -> str:
        return f"{self.etl_resource_prefix}-freshness"

    @property
    def ops_database(self) -> str:
        """Run history (`runs`), outside the crawled layers: the core stack declares its table."""
        return f"{self.database_prefix}_ops"

    @staticmethod
    def ops_runs_prefix() -> str:
        return "ops/runs/"

    @staticmethod
    def ops_run_key(dataset: str, run_id: str, layer: str) -> str:
        """One JSON line per run and layer, for the `runs` table (the ledger itself is indented JSON).

        One flat folder: the table has no partitions to load, and Athena reads it as written.
        """
        return f"ops/runs/{dataset}.{check_run_id(run_id)}.{layer}.json"

    # ---- every physical name, for limits and collisions (mirrors stacks/core_stack.py and dataset_stack.py)
    def core_resources(self) -> list[Resource]:
        owner = f"the core stack {self.core_stack}"

        def core(kind: str, name: str, what: str = "", field: str = "etl_resource_prefix") -> Resource:
            part = self.database_prefix if field == "database_prefix" else self.etl_resource_prefix
            return Resource(kind, name, f"{owner}{what}", "config.json", field, part)

        return [
            core("stack", self.core_stack),
            core("s3_bucket", self.bucket(ACCOUNT_PLACEHOLDER), " (lake bucket)"),
            core("s3_bucket", self.access_log_bucket(ACCOUNT_PLACEHOLDER), " (access log bucket)"),
            *(core("glue_database", self.database(layer), field="database_prefix") for layer in LAYERS),
            core("iam_role", self.job_role, " (the shared Glue job role)"),
            core("iam_role", self.crawler_role, " (the crawler role)"),
            core("glue_security_configuration", self.security_configuration),
            core("athena_workgroup", self.workgroup),
            core("kms_alias", self.key_alias),
            core("sns_topic", self.failure_topic),
            core("lambda_function", self.freshness_function, " (the freshness check)"),
            core("log_group", f"/aws/lambda/{self.freshness_function}", " (the freshness check's logs)"),
            core("events_rule", self.freshness_rule, " (the hourly freshness check)"),
        ]

    def dataset_resources(
        self,
        dataset: str,
        *,
        models: Sequence[str] = (),
        queries: Sequence[str] = (),
        own_role: bool = False,
        schedule: bool = False,
        export: bool = False,
        arrival: bool = False,
        description: str = "",
        iceberg: bool = False,
    ) -> list[Resource]:
        """The names a dataset's stack creates; `models` and `queries` are its gold/ and queries/ file stems.

        `iceberg`: the jobs commit their own catalog tables, and the stack has no crawler (stacks/layers.py).
        """
        owner, config = f"dataset {dataset}", f"datasets/{dataset}/config.json"
        stack_description = Resource(
            "stack_description", self.dataset_stack_description(dataset, description), owner, config, "description",
            description,
        )  # fmt: skip

        def named(kind: str, name: str, what: str = "", scope: str = "") -> Resource:
            return Resource(kind, name, f"{owner}{what}", config, "dataset", dataset, scope)

        found = [
            stack_description,
            named("stack", self.dataset_stack(dataset)),
            named("glue_table", table_name(dataset), " (bronze table)", scope=self.database("bronze")),
            named("glue_job", self.job("bronze", dataset)),
            *([] if iceberg else [named("glue_crawler", self.crawler("bronze", dataset))]),
            named("state_machine", self.state_machine(dataset)),
            named("log_group", f"/aws/vendedlogs/states/{self.state_machine(dataset)}"),
            named("events_rule", self.failure_rule(dataset), " (failure rule)"),
            named("events_rule", self.job_failure_rule(dataset), " (job failure rule)"),
        ]
        if models:
            found.append(named("glue_job", self.job("gold", dataset)))
            if not iceberg:
                found.append(named("glue_crawler", self.crawler("gold", dataset)))
        if own_role:
            found.append(named("iam_role", self.dataset_job_role_name(dataset), " (its own job role)"))
        if schedule:
            found.append(named("schedule", self.schedule(dataset)))
        if export:
            found.append(named("lambda_function", self.export_function(dataset)))
            found.append(named("log_group", f"/aws/lambda/{self.export_function(dataset)}"))
        if arrival:
            found.append(named("events_rule", self.arrival_rule(dataset), " (arrival rule)"))
        for model in models:
            file = f"datasets/{dataset}/gold/{model}.sql"
            found.append(Resource("glue_table", model, f"{owner} ({file})", file, "", model, self.database("gold")))
        for query in queries:
            file = f"datasets/{dataset}/queries/{query}.sql"
            found.append(
                Resource("named_query", self.named_query(dataset, query), f"{owner} ({file})", file, "", query)
            )
        return found

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
    def drop_marker_key(dataset: str, run_id: str) -> str:
        """The object that closes a drop into a raw run folder; its arrival starts one pipeline run."""
        return f"{Naming.raw_prefix(dataset, run_id)}{DROP_MARKER}"

    @staticmethod
    def raw_manifest_key(dataset: str, run_id: str) -> str:
        """The completion record of a raw run the job fetched itself: written last, it lists every file and its size."""
        return f"{Naming.raw_prefix(dataset, run_id)}{RAW_MANIFEST}"

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

    def wheels_prefix(self, dataset: str) -> str:
        """Where the jobs' pinned wheels are deployed; Glue installs them from there with --no-index."""
        return f"{self.etl_prefix(dataset)}glue/{WHEELS_DIR}/"

    def job_config_key(self, dataset: str) -> str:
        return f"{self.etl_prefix(dataset)}{JOB_CONFIG}"

    def transform_hook_key(self, dataset: str) -> str:
        """The dataset's optional `transform.py`, as the stack deploys it beside the job config."""
        return f"{self.etl_prefix(dataset)}{TRANSFORM_HOOK}"

    @staticmethod
    def iceberg_catalog_key() -> str:
        """A local lake's Iceberg catalog (SQLite); on AWS the Glue Data Catalog holds the tables."""
        return "_iceberg/catalog.db"

    @staticmethod
    def athena_results_prefix() -> str:
        return "athena-results/"

    @staticmethod
    def _layer(layer: str) -> None:
        if layer not in LAYERS:
            raise ValueError(f"layer {layer!r} is not one of {', '.join(LAYERS)}")


LIBRARY_ZIP = "dwlib.zip"
WHEELS_DIR = "wheels"
# Non-empty, written last: a 0-byte object never starts a run (console folders, placeholders).
# Its name starts with `_`, so jobs never read it as data (Lake.data_files skips such names).
DROP_MARKER = "_SUCCESS"
# A fetch (source_url, api_endpoints, --sample) closes its raw run folder with this manifest, written last: a folder
# without one is a fetch that never finished, and is never replayed. Drops are closed by their DROP_MARKER instead.
RAW_MANIFEST = "_manifest.json"
DROPPED_SOURCES = ("landing", "dynamodb_table")  # source kinds whose raw files someone else puts in the folder
JOB_CONFIG = "job_config.json"
TRANSFORM_HOOK = "transform.py"  # datasets/{dataset}/transform.py, deployed to etl/{dataset}/transform.py
