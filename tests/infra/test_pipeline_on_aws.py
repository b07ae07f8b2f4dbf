"""The pipeline as AWS would run it: the synthesized definitions, walked with real evaluators.

- asl-validator (npm) checks every state machine definition;
- the reference `jsonata` package (2.0.6, the version Step Functions implements) evaluates the
  definition's own expressions in tests/infra/sfn_harness.js, against inputs shaped as AWS sends them:
  an EventBridge Scheduler start (`{}`), S3 "Object Created" events as the S3 user guide documents
  them, and every manual input the README and `dw run --help` show;
- moto's EventBridge pattern matcher checks the rules' patterns against the same events.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk.assertions import Template
from moto.events.models import EventPattern

from dwlib.config import load_project
from dwlib.naming import DROP_MARKER, Naming
from stacks.dataset_stack import GLUE_CAPACITY_WAIT_S

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("sfn_harness.js")
DATASETS = sorted(load_project(ROOT).datasets)
RUN = "20261121T060000Z"
RAW = "20261120T050000Z"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}
BUCKET = "pp-dw-123456789012"
RUN_ID = re.compile(r"^\d{8}T\d{6}Z$")


def node() -> str:
    found = shutil.which("node")
    assert found, "node is needed for these tests: `make install` brings Node 22 into node_modules/"
    return found


@pytest.fixture(scope="module")
def templates(stacks, project):
    naming = Naming.of(project.core)
    return {name: Template.from_stack(stacks[naming.dataset_stack(name)]) for name in project.datasets}


def render(value):
    """A CloudFormation value with the pseudo parameters an account would give it."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in PSEUDO:
        return PSEUDO[value["Ref"]]
    if isinstance(value, dict) and set(value) == {"Fn::Join"}:
        sep, parts = value["Fn::Join"]
        return sep.join(render(p) for p in parts)
    raise AssertionError(f"the definition refers to {value!r}, not only to pseudo parameters")


def machine(templates, name) -> tuple[dict, dict]:
    (resource,) = templates[name].find_resources("AWS::StepFunctions::StateMachine").values()
    return json.loads(render(resource["Properties"]["DefinitionString"])), resource["Properties"]


def walk(definition: dict, *cases: dict) -> list[dict]:
    """Run the harness over cases ({"input", "results", "errors"}) of one definition."""
    payload = [{"definition": definition, **case} for case in cases]
    done = subprocess.run(
        [node(), str(HARNESS)], input=json.dumps(payload), capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    for case, result in zip(cases, out, strict=True):
        assert result["status"] != "HARNESS_ERROR", (case, result)
    return out


def s3_event(key: str, size: int = 5, bucket: str = BUCKET) -> dict:
    """An "Object Created" event exactly as the S3 user guide's EventBridge example, with our bucket and key."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2021-11-12T00:00:00Z",
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": size,
                "etag": "b1946ac92492d2347c6235b4d2611184",
                "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                "sequencer": "617f08299329d189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


def glue_calls(result: dict) -> dict[str, dict]:
    return {
        call["arguments"]["JobName"]: call["arguments"]["Arguments"]
        for call in result["calls"]
        if call["resource"].endswith(":states:::glue:startJobRun.sync")
    }


def has_gold(name: str) -> bool:
    return bool(list((ROOT / "datasets" / name / "gold").glob("*.sql")))


def arrival_datasets(project) -> list[str]:
    return [n for n, d in project.datasets.items() if d.source_kind in ("dynamodb_table", "landing")]


# ------------------------------------------------------------------ 5: valid definitions, valid arguments


@pytest.mark.parametrize("name", DATASETS)
def test_every_state_machine_passes_asl_validator(templates, name, tmp_path):
    definition, _ = machine(templates, name)
    path = tmp_path / "definition.json"
    path.write_text(json.dumps(definition))
    validator = ROOT / "node_modules" / "asl-validator" / "dist" / "bin" / "asl-validator.js"
    done = subprocess.run([node(), str(validator), "--json-path", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", DATASETS)
def test_glue_tasks_pass_no_null_and_no_notification_property(templates, name):
    definition, _ = machine(templates, name)

    def nulls(value, path="") -> list[str]:
        if value is None:
            return [path]
        if isinstance(value, dict):
            return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
        if isinstance(value, list):
            return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
        return []

    tasks = {n: s for n, s in definition["States"].items() if s["Type"] == "Task"}
    assert any("glue:startJobRun" in s["Resource"] for s in tasks.values())
    for state_name, state in tasks.items():
        assert nulls(state["Arguments"]) == [], state_name
        assert "NotificationProperty" not in state["Arguments"], state_name
    # ...and what the harness evaluates reaches Glue as strings only.
    (result,) = walk(definition, {"input": {}})
    for arguments in glue_calls(result).values():
        assert all(isinstance(v, str) for v in arguments.values()), arguments


# ------------------------------------------------------------------ 1: retries and timeouts


@pytest.mark.parametrize("name", DATASETS)
def test_glue_never_retries_and_the_pipeline_retries_only_transient_errors(templates, name):
    for job in templates[name].find_resources("AWS::Glue::Job").values():
        assert job["Properties"]["MaxRetries"] == 0, job["Properties"]["Name"]
    definition, _ = machine(templates, name)
    for state in definition["States"].values():
        if state["Type"] != "Task" or "glue:startJobRun" not in state["Resource"]:
            continue
        assert "Catch" not in state  # a failed job run fails the execution (and alerts)
        for retry in state["Retry"]:
            assert all(e.startswith("Glue.") for e in retry["ErrorEquals"]), retry
            assert retry["BackoffRate"] > 1 and retry["IntervalSeconds"] >= 1
        errors = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        # Every error the Glue API model gives StartJobRun is retried but a wrong request; and throttling, under
        # both names it may take (the model has no ThrottlingException shape: see the test below).
        throttled = {"Glue.ThrottlingException", "Glue.AWSGlueException"}
        assert errors == {f"Glue.{e}" for e in start_job_run_errors() - REQUEST_ERRORS} | throttled
        assert not errors & {"States.ALL", "States.TaskFailed", "States.Timeout"}


# A throttled startJobRun.sync as AWS's knowledge center article "glue-throttling-rate-exceeded" shows it:
# Glue's API models no throttling error, so the SDK reports its base class.
THROTTLED_START = {
    "Error": "Glue.AWSGlueException",
    "Cause": "Rate exceeded (Service: AWSGlue; Status Code: 400; Error Code: ThrottlingException; "
    "Request ID: 70ea5ab7-2bb8-4a47-b957-799ef46c129e; Proxy: null)",
}


@pytest.mark.parametrize("name", DATASETS)
def test_a_throttled_job_start_as_aws_reports_it_is_retried(templates, name):
    definition, _ = machine(templates, name)
    (result,) = walk(definition, {"input": {}, "errors": {"BronzeJobRun": THROTTLED_START}})
    assert result["retried"] == {"BronzeJobRun": 3}  # README, "Retries and timeouts"


REQUEST_ERRORS = {"InvalidInputException", "EntityNotFoundException"}  # the same request fails the same way again


def start_job_run_errors() -> set[str]:
    """The errors StartJobRun may return, as botocore's model of the Glue API lists them."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("glue")
    return {shape.name for shape in model.operation_model("StartJobRun").error_shapes}


@pytest.mark.parametrize("name", DATASETS)
def test_a_failed_job_run_is_not_retried_and_stops_the_pipeline(templates, name):
    definition, _ = machine(templates, name)
    failed = {"Error": "States.TaskFailed", "Cause": json.dumps({"JobRunState": "FAILED", "ErrorMessage": "quality"})}
    (result,) = walk(definition, {"input": {}, "errors": {"BronzeJobRun": failed}})
    assert result["status"] == "FAILED" and result["error"] == "States.TaskFailed"
    assert result["retried"] == {"BronzeJobRun": 0}
    assert list(glue_calls(result)) == [f"pp-dw-bronze-{name}"]  # gold never starts after a failed bronze


@pytest.mark.parametrize("name", DATASETS)
def test_pipeline_timeout_covers_each_job_and_its_retry_waits_without_a_glue_retry_multiplier(templates, name):
    definition, _ = machine(templates, name)
    jobs = {j["Properties"]["Name"]: j["Properties"] for j in templates[name].find_resources("AWS::Glue::Job").values()}
    job_seconds = sum(j["Timeout"] * 60 for j in jobs.values())
    waits = 0
    for state in definition["States"].values():
        if state["Type"] == "Task" and "glue:startJobRun" in state["Resource"]:
            for r in state["Retry"]:
                waits += sum(
                    min(r["IntervalSeconds"] * r["BackoffRate"] ** i, r.get("MaxDelaySeconds", 10**9))
                    for i in range(r["MaxAttempts"])
                )
    needed = job_seconds + waits + len(jobs) * GLUE_CAPACITY_WAIT_S
    assert needed <= definition["TimeoutSeconds"] <= needed + 15 * 60


# ------------------------------------------------------------------ 2: crawlers


# Iceberg datasets have no crawler: their jobs evolve the table themselves (tests/jobs/test_iceberg.py).
@pytest.mark.parametrize("name", [n for n in DATASETS if load_project(ROOT).datasets[n].table_format != "iceberg"])
def test_crawlers_write_retyped_columns_to_the_catalog(templates, name):
    crawlers = templates[name].find_resources("AWS::Glue::Crawler").values()
    assert crawlers
    for crawler in crawlers:
        props = crawler["Properties"]
        configuration = json.loads(props["Configuration"])
        # MergeNewColumns would only ever add columns: a retyped one would keep its old type.
        assert "AddOrUpdateBehavior" not in json.dumps(configuration.get("CrawlerOutput", {}).get("Tables", {}))
        assert props["SchemaChangePolicy"] == {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
        for target in props["Targets"]["S3Targets"]:
            assert {"**/_SUCCESS", "**/_metadata", "**/_common_metadata"} <= set(target["Exclusions"])


# ------------------------------------------------------------------ 4: starts and their inputs


@pytest.mark.parametrize("name", DATASETS)
def test_a_scheduled_start_runs_every_layer_with_a_fresh_run_id(templates, name):
    definition, _ = machine(templates, name)
    (result,) = walk(definition, {"input": {}})
    assert result["status"] == "SUCCEEDED"
    calls = glue_calls(result)
    expected = [f"pp-dw-bronze-{name}"] + ([f"pp-dw-gold-{name}"] if has_gold(name) else [])
    assert list(calls) == expected
    bronze = calls[f"pp-dw-bronze-{name}"]
    assert RUN_ID.match(bronze["--run_id"]) and bronze["--raw_run_id"] == "none" and bronze["--dry_run"] == "false"
    assert {a["--run_id"] for a in calls.values()} == {bronze["--run_id"]}  # one run id for every layer


GOLD = [n for n in DATASETS if has_gold(n)]


@pytest.mark.parametrize("name", GOLD)
@pytest.mark.parametrize(
    ("request_", "jobs", "expected"),
    [
        ({"layers": ["gold"]}, ["gold"], {"--run_id": RUN, "--dry_run": "false"}),
        ({"layers": ["bronze"]}, ["bronze"], {"--run_id": RUN, "--dry_run": "false", "--raw_run_id": "none"}),
        ({"layers": ["gold", "bronze"]}, ["bronze", "gold"], {"--run_id": RUN}),
        ({"dry_run": True}, ["bronze", "gold"], {"--run_id": RUN, "--dry_run": "true"}),
        ({"raw_run_id": RAW, "layers": ["bronze"]}, ["bronze"], {"--raw_run_id": RAW, "--run_id": RUN}),
        ({"layers": ["gold"], "dry_run": True, "raw_run_id": RAW}, ["gold"], {"--dry_run": "true"}),
    ],
    ids=["gold-only", "bronze-only", "both-any-order", "dry-run", "replay", "issue-example"],
)
def test_a_manual_start_runs_only_the_named_layers_with_its_arguments(templates, name, request_, jobs, expected):
    definition, _ = machine(templates, name)
    (result,) = walk(definition, {"input": {**request_, "run_id": RUN}})
    assert result["status"] == "SUCCEEDED", result
    calls = glue_calls(result)
    assert list(calls) == [f"pp-dw-{layer}-{name}" for layer in jobs]
    for arguments in calls.values():
        assert {k: v for k, v in arguments.items() if k in expected} == {
            k: v for k, v in expected.items() if k in arguments
        }
    if request_.get("dry_run"):
        assert all(a["--dry_run"] == "true" for a in calls.values())  # every job, not only the first


@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"layers": ["silver"]}, "layers"),
        ({"layers": "gold"}, "layers"),
        ({"layers": []}, "layers"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"run_id": "raw"}, "run id raw"),
        ({"run_id": "2026-11-21"}, "YYYYMMDDTHHMMSSZ"),
        ({"run_id": "20261399T999999Z"}, "run id 20261399T999999Z is not a moment in time"),
        ({"run_id": "20260230T000000Z"}, "run id 20260230T000000Z is not a moment in time"),
        ({"run_id": "00000101T000000Z"}, "run id 00000101T000000Z is not a moment in time"),
        ({"raw_run_id": "latest"}, "raw_run_id latest"),
        ({"raw_run_id": "20261121T240000Z"}, "raw_run_id 20261121T240000Z is not a moment in time"),
        ({"layer": ["gold"]}, "unknown input field(s) layer"),
        (None, "the input null is not a JSON object"),
        ("hello", "the input hello is not a JSON object"),
        ([], "is not a JSON object"),
        (42, "the input 42 is not a JSON object"),
    ],
    ids=[
        "unknown-layer",
        "layers-not-a-list",
        "no-layers",
        "dry-run-not-boolean",
        "run-id-raw",
        "run-id-date",
        "run-id-month-13",
        "run-id-february-30",
        "run-id-year-0",
        "raw-run-id",
        "raw-run-id-hour-24",
        "typo",
        "null",
        "a-string",
        "a-list",
        "a-number",
    ],
)
def test_a_bad_manual_input_fails_before_any_job_with_a_message(templates, name, request_, message):
    definition, _ = machine(templates, name)
    (result,) = walk(definition, {"input": request_})
    assert result["status"] == "FAILED" and result["error"] == "pp-dw.BadInput", result
    assert message in result["cause"]
    assert result["calls"] == []


@pytest.mark.parametrize("name", [n for n in DATASETS if not has_gold(n)])
def test_asking_for_gold_where_there_is_none_fails_clearly(templates, name):
    definition, _ = machine(templates, name)
    (result,) = walk(definition, {"input": {"layers": ["gold"]}})
    assert result["status"] == "FAILED" and "no gold models" in result["cause"] and result["calls"] == []


# ------------------------------------------------------------------ 3: arrivals


@pytest.fixture(scope="module")
def arrivals(project):
    names = arrival_datasets(project)
    assert names, "an example dataset must start on arrival (dynamodb_table or landing)"
    return names


def test_a_drop_marker_starts_one_run_named_by_its_run_id(templates, arrivals):
    for name in arrivals:
        definition, _ = machine(templates, name)
        marker = Naming.drop_marker_key(name, RUN)
        started, repeated, child = walk(
            definition,
            {"input": s3_event(marker)},
            {
                "input": s3_event(marker),
                "errors": {
                    "StartRunOfDrop": {
                        "Error": "StepFunctions.ExecutionAlreadyExistsException",
                        "Cause": "Execution Already Exists",
                    }
                },
            },
            # the child execution's input, as the start task passes it
            {"input": {"run_id": RUN}},
        )
        assert started["status"] == "SUCCEEDED" and glue_calls(started) == {}
        (start,) = started["calls"]
        assert start["resource"] == "arn:aws:states:::states:startExecution"
        assert start["arguments"] == {
            "StateMachineArn": f"arn:aws:states:us-east-1:123456789012:stateMachine:pp-dw-pipeline-{name}",
            "Name": RUN,
            "Input": {"run_id": RUN},
        }
        # The same marker again (S3 delivers at least once; a marker rewritten): no failure, no second run.
        assert repeated["status"] == "SUCCEEDED" and repeated["path"][-1] == "AlreadyStarted"
        assert child["status"] == "SUCCEEDED"
        assert {a["--run_id"] for a in glue_calls(child).values()} == {RUN}


@pytest.mark.parametrize(
    "key",
    [
        "raw/{name}/run_id%3D{run}/_SUCCESS",
        "raw/{name}/run%5Fid%3D{run}/_SUCCESS",
    ],
    ids=["encoded-equals", "encoded-underscore-and-equals"],
)
def test_url_encoded_marker_keys_give_the_run_id(templates, arrivals, key):
    for name in arrivals:
        definition, _ = machine(templates, name)
        (result,) = walk(definition, {"input": s3_event(key.format(name=name, run=RUN))})
        assert result["status"] == "SUCCEEDED", result
        assert result["calls"][0]["arguments"]["Name"] == RUN


@pytest.mark.parametrize(
    "key",
    [
        "raw/{name}/run_id={run}/drop+of+the+day/_SUCCESS",
        "raw/{name}/run_id%3D{run}/drop%20of%20the%20day/_SUCCESS",
        "raw/{name}/run_id={run}/100%25+sure/_SUCCESS",
        # Escapes that are not UTF-8 (a raw key holding a literal %): the key is taken as it is, not a JSONata error.
        "raw/{name}/run_id={run}/100%FF/_SUCCESS",
        "raw/{name}/run_id={run}/a%E0%A4/_SUCCESS",
        "raw/{name}/run_id={run}/a%ED%A0%80/_SUCCESS",
        # Spark's own _SUCCESS in an output folder copied into the drop, which can land before the drop's files
        "raw/{name}/run_id={run}/part-a/_SUCCESS",
        "raw/{name}/run_id={run}/2026/11/21/_SUCCESS",
        "raw/{name}/run_id={run}/run_id={run}/_SUCCESS",
    ],
    ids=["plus-for-space", "percent-20", "encoded-percent", "not-utf8", "cut-utf8", "surrogate", "sub-folder",
         "deep", "run-folder-in-run-folder"],
)
def test_a_marker_in_a_sub_folder_of_a_drop_starts_nothing(templates, arrivals, key):
    """Only the marker directly in the run folder starts the run (README, "Arrivals"): a marker deeper down
    would start it before the drop's other files are there, and the real marker would then start nothing."""
    for name in arrivals:
        definition, _ = machine(templates, name)
        (result,) = walk(definition, {"input": s3_event(key.format(name=name, run=RUN))})
        assert result["status"] == "SUCCEEDED" and result["calls"] == [] and result["path"][-1] == "NotAMarker"


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("raw/{name}/_SUCCESS", "raw/{name}/_SUCCESS"),
        ("raw/{name}/latest/_SUCCESS", "raw/{name}/latest/_SUCCESS"),
        ("raw/{name}/run_id=latest/_SUCCESS", "raw/{name}/run_id=latest/_SUCCESS"),
        ("raw/{name}/run_id=/_SUCCESS", "raw/{name}/run_id=/_SUCCESS"),
        ("raw/{name}/run_id=20261399T999999Z/_SUCCESS", "20261399T999999Z"),
        ("raw/{name}/run_id%3Draw+drop/_SUCCESS", "raw/{name}/run_id=raw drop/_SUCCESS"),
    ],
    ids=["no-folder", "no-run-id", "malformed", "empty", "impossible", "encoded-malformed"],
)
def test_a_marker_without_a_valid_run_id_fails_naming_its_key(templates, arrivals, key, shown):
    for name in arrivals:
        definition, _ = machine(templates, name)
        (result,) = walk(definition, {"input": s3_event(key.format(name=name))})
        assert result["status"] == "FAILED" and result["error"] == "pp-dw.BadInput", result
        assert shown.format(name=name) in result["cause"]
        assert result["calls"] == []  # never a run id such as "raw"


@pytest.mark.parametrize(
    ("key", "size"),
    [
        ("raw/{name}/run_id={run}/_SUCCESS", 0),  # an empty marker
        ("raw/{name}/run_id={run}/", 0),  # the console's "Create folder"
        ("raw/{name}/run_id={run}/part-0001.csv", 1024),  # one file of a drop
    ],
    ids=["empty-marker", "folder", "data-file"],
)
def test_objects_that_are_not_a_marker_start_nothing_even_past_the_rule(templates, arrivals, key, size):
    for name in arrivals:
        definition, _ = machine(templates, name)
        (result,) = walk(definition, {"input": s3_event(key.format(name=name, run=RUN), size)})
        assert result["status"] == "SUCCEEDED" and result["calls"] == [] and result["path"][-1] == "NotAMarker"


def _pattern_matches(pattern: dict, event: dict) -> bool:
    """moto's EventBridge matcher (what its event buses route with): prefix, wildcard, numeric, ...

    moto treats a filter it does not know as a match, so the patterns here use only wildcard and
    numeric filters, which it implements (checked by the negative cases below).
    """
    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def _rule(templates, name: str, rule_name: str) -> dict:
    (rule,) = templates[name].find_resources("AWS::Events::Rule", {"Properties": {"Name": rule_name}}).values()
    return rule["Properties"]


def _with_bucket(pattern: dict) -> dict:
    pattern = copy.deepcopy(pattern)
    pattern["detail"]["bucket"]["name"] = [render(v) for v in pattern["detail"]["bucket"]["name"]]
    return pattern


@pytest.mark.parametrize(
    ("key", "size", "starts"),
    [
        ("raw/{name}/run_id={run}/_SUCCESS", 38, True),
        ("raw/{name}/run_id%3D{run}/_SUCCESS", 38, True),
        ("raw/{name}/run_id={run}/_SUCCESS", 0, False),
        ("raw/{name}/run_id={run}/", 0, False),
        ("raw/{name}/run_id={run}/{name}.csv", 2048, False),
        ("raw/{name}/run_id={run}/part 1.csv", 2048, False),
        ("raw/{name}/_SUCCESS", 38, False),
        ("raw/{name}-old/run_id={run}/_SUCCESS", 38, False),
        ("raw/{name}/run_id={run}/_SUCCESS.tmp", 38, False),
    ],
    ids=[
        "marker",
        "encoded-marker",
        "empty-marker",
        "folder",
        "data-file",
        "spaced-file",
        "no-run-folder",
        "other-dataset",
        "not-the-marker",
    ],
)
def test_the_arrival_rule_lets_through_only_a_non_empty_marker(templates, arrivals, key, size, starts):
    for name in arrivals:
        rule = _rule(templates, name, f"pp-dw-arrival-{name}")
        pattern = _with_bucket(rule["EventPattern"])
        assert _pattern_matches(pattern, s3_event(key.format(name=name, run=RUN), size)) is starts
        assert _pattern_matches(pattern, s3_event(Naming.drop_marker_key(name, RUN), 38, "other-bucket")) is False
        # the whole event reaches the pipeline, which reads the key itself
        (target,) = rule["Targets"]
        assert "Input" not in target and "InputTransformer" not in target and "InputPath" not in target


# ------------------------------------------------------------------ 7: job runs started by hand


def glue_state_change(job: str, state: str) -> dict:
    """A "Glue Job State Change" event as the Glue developer guide documents it."""
    return {
        "version": "0",
        "id": "abcdef00-1234-5678-9abc-def012345678",
        "detail-type": "Glue Job State Change",
        "source": "aws.glue",
        "account": "123456789012",
        "time": "2017-09-07T18:57:21Z",
        "region": "us-west-2",
        "resources": [],
        "detail": {
            "jobName": job,
            "severity": "ERROR" if state != "SUCCEEDED" else "INFO",
            "state": state,
            "jobRunId": "jr_abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789",
            "message": "An error occurred while calling o78.save.",
        },
    }


@pytest.mark.parametrize("name", DATASETS)
def test_a_job_run_that_fails_outside_the_pipeline_notifies_the_topic(templates, name):
    rule = _rule(templates, name, f"pp-dw-job-failures-{name}")
    pattern = rule["EventPattern"]
    jobs = [f"pp-dw-bronze-{name}"] + ([f"pp-dw-gold-{name}"] if has_gold(name) else [])
    for job in jobs:
        for state in ("FAILED", "TIMEOUT", "STOPPED", "ERROR"):
            assert _pattern_matches(pattern, glue_state_change(job, state)), (job, state)
        assert not _pattern_matches(pattern, glue_state_change(job, "SUCCEEDED"))
    assert not _pattern_matches(pattern, glue_state_change(f"pp-dw-bronze-{name}-other", "FAILED"))
    (target,) = rule["Targets"]
    assert ":pp-dw-failures" in json.dumps(target["Arn"])
    assert "<detail-jobName>" in json.dumps(target["InputTransformer"])


# ------------------------------------------------------------------ 4: -c force_dry_run=true


def test_force_dry_run_context_reaches_every_glue_job(project):
    from app import build_app, new_app

    for context, expected in (({}, "false"), ({"force_dry_run": "true"}, "true")):
        app = build_app(project, new_app(**context))
        for name in ("fda-nsde", "ourairports"):
            template = Template.from_stack(app.node.try_find_child(f"pp-dw-dataset-{name}"))
            jobs = template.find_resources("AWS::Glue::Job").values()
            assert jobs
            assert {j["Properties"]["DefaultArguments"]["--force_dry_run"] for j in jobs} == {expected}


# ------------------------------------------------------------------ 4: the commands `dw list` prints


def test_the_start_commands_dw_list_prints_are_accepted_by_the_pipeline(templates, tmp_path):
    help_text = subprocess.run(
        [sys.executable, "-m", "dw.cli", "list", "--lake", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    machine_name = re.search(r"name=='([a-z0-9-]+)'", help_text).group(1)
    name = machine_name.removeprefix("pp-dw-pipeline-")
    assert name in GOLD  # the examples show a dataset with both layers
    commands = [line.strip() for line in help_text.splitlines() if "aws stepfunctions start-execution" in line]
    assert len(commands) >= 5, help_text
    seen_layers = set()
    for command in commands:
        assert '--state-machine-arn "$ARN"' in command
        payload = json.loads(re.search(r"--input '([^']*)'", command).group(1))
        definition, _ = machine(templates, name)
        (result,) = walk(definition, {"input": payload})
        assert result["status"] == "SUCCEEDED", (command, result)
        calls = glue_calls(result)
        layers = payload.get("layers", ["bronze", "gold"])
        assert list(calls) == [f"pp-dw-{layer}-{name}" for layer in ("bronze", "gold") if layer in layers]
        if payload.get("dry_run"):
            assert {a["--dry_run"] for a in calls.values()} == {"true"}
        if "raw_run_id" in payload:
            assert calls[f"pp-dw-bronze-{name}"]["--raw_run_id"] == payload["raw_run_id"]
        seen_layers.update(layers)
    assert {"bronze", "gold"} <= seen_layers


def test_drop_marker_is_named_by_the_job_library():
    assert Naming.drop_marker_key("app-users", RUN) == f"raw/app-users/run_id={RUN}/{DROP_MARKER}"
    assert DROP_MARKER.startswith("_")  # Lake.data_files never reads it as data
