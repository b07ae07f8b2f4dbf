"""Every discovered dataset folder becomes a stack whose names all follow the convention."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from dwlib.config import load_project, table_format_of
from dwlib.jobs import BRONZE_ARGS, GOLD_ARGS
from dwlib.naming import Naming, table_name

ROOT = Path(__file__).resolve().parents[2]
DATASETS = sorted(load_project(ROOT).datasets)
# Iceberg datasets' jobs commit their tables themselves: they have no crawler (tests/infra/test_iceberg_stack.py).
CRAWLED = [n for n in DATASETS if table_format_of(load_project(ROOT).core, load_project(ROOT).datasets[n]) == "parquet"]


@pytest.fixture(scope="module")
def templates(stacks, project):
    naming = Naming.of(project.core)
    return {name: Template.from_stack(stacks[naming.dataset_stack(name)]) for name in project.datasets}


@pytest.mark.parametrize("name", DATASETS)
def test_bronze_job_follows_the_convention(templates, project, name):
    workers = project.core.glue_worker_configs[project.datasets[name].data_size_category]
    templates[name].has_resource_properties(
        "AWS::Glue::Job",
        {
            "Name": f"pp-dw-bronze-{name}",
            "GlueVersion": "5.1",
            "WorkerType": workers.worker_type,
            "NumberOfWorkers": workers.number_of_workers,
            "MaxRetries": 0,  # the pipeline retries transient errors itself (test_pipeline_on_aws.py)
            "Timeout": project.core.glue_defaults.timeout_minutes,
            "ExecutionProperty": {"MaxConcurrentRuns": 1},
            "SecurityConfiguration": "pp-dw-glue-security",
            "Command": Match.object_like(
                {
                    "Name": "glueetl",
                    "ScriptLocation": {
                        "Fn::Join": ["", ["s3://pp-dw-", {"Ref": "AWS::AccountId"}, f"/etl/{name}/glue/bronze_job.py"]]
                    },
                }
            ),
            "DefaultArguments": Match.object_like(
                {
                    "--dataset": name,
                    "--run_id": "auto",
                    "--extra-py-files": {
                        "Fn::Join": ["", ["s3://pp-dw-", {"Ref": "AWS::AccountId"}, f"/etl/{name}/glue/dwlib.zip"]]
                    },
                }
            ),
        },
    )


@pytest.mark.parametrize("name", DATASETS)
def test_job_arguments_match_the_entry_point(templates, name):
    """Glue parity: the stack passes exactly the arguments the entry point resolves."""
    jobs = templates[name].find_resources("AWS::Glue::Job")
    expected = {f"pp-dw-bronze-{name}": BRONZE_ARGS, f"pp-dw-gold-{name}": GOLD_ARGS}
    for job in jobs.values():
        # Glue's own parameters are hyphenated (--extra-py-files); the job's own use underscores.
        passed = {key[2:] for key in job["Properties"]["DefaultArguments"] if "-" not in key[2:]}
        assert passed == set(expected[job["Properties"]["Name"]])


@pytest.mark.parametrize("name", DATASETS)
def test_job_files_are_deployed_by_the_stack(templates, name):
    templates[name].has_resource_properties(
        "Custom::CDKBucketDeployment", {"DestinationBucketKeyPrefix": f"etl/{name}/", "Prune": True}
    )


@pytest.mark.parametrize("name", CRAWLED)
def test_crawler_targets_only_the_table_folder(templates, name):
    templates[name].has_resource_properties(
        "AWS::Glue::Crawler",
        {
            "Name": f"pp-dw-bronze-{name}-crawler",
            "DatabaseName": "pp_dw_bronze",
            "CrawlerSecurityConfiguration": "pp-dw-glue-security",
            "Targets": {
                "S3Targets": [
                    Match.object_like(
                        {
                            "Path": {
                                "Fn::Join": [
                                    "",
                                    ["s3://pp-dw-", {"Ref": "AWS::AccountId"}, f"/bronze/{table_name(name)}/"],
                                ]
                            }
                        }
                    )
                ]
            },
            "Schedule": Match.absent(),
        },
    )


@pytest.mark.parametrize("name", DATASETS)
def test_pipeline_runs_the_bronze_job_synchronously_with_a_run_id(templates, name):
    template = templates[name]
    (machine,) = template.find_resources(
        "AWS::StepFunctions::StateMachine", {"Properties": {"StateMachineName": f"pp-dw-pipeline-{name}"}}
    ).values()
    definition = json.dumps(machine["Properties"]["DefinitionString"])
    assert "glue:startJobRun.sync" in definition
    assert f"pp-dw-bronze-{name}" in definition
    assert "--run_id" in definition and "$now(" in definition
    assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
    assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"


@pytest.mark.parametrize("name", DATASETS)
def test_schedule_starts_the_pipeline(templates, project, name):
    expression = project.datasets[name].schedule
    schedules = templates[name].find_resources("AWS::Scheduler::Schedule")
    if expression is None:
        assert schedules == {}
        return
    # DynamoDB datasets: the schedule runs the export; the file's arrival runs the pipeline.
    exported = project.datasets[name].source_kind == "dynamodb_table"
    target = (
        {"Fn::GetAtt": [Match.string_like_regexp("ExportFunction"), "Arn"]}
        if exported
        else {"Ref": Match.string_like_regexp("Pipeline")}
    )
    templates[name].has_resource_properties(
        "AWS::Scheduler::Schedule",
        {
            "Name": f"pp-dw-schedule-{name}",
            "ScheduleExpression": expression,
            "Target": Match.object_like({"Arn": target}),
        },
    )


@pytest.mark.parametrize("name", DATASETS)
def test_failures_and_timeouts_go_to_the_topic(templates, name):
    templates[name].has_resource_properties(
        "AWS::Events::Rule",
        {
            "Name": f"pp-dw-failures-{name}",
            "EventPattern": {
                "source": ["aws.states"],
                "detail-type": ["Step Functions Execution Status Change"],
                "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": Match.any_value()},
            },
            "Targets": [
                Match.object_like(
                    {"Arn": Match.object_like({"Fn::Join": Match.array_with([Match.array_with([":pp-dw-failures"])])})}
                )
            ],
        },
    )


@pytest.mark.parametrize("name", DATASETS)
def test_named_queries_from_the_queries_folder(templates, project, name):
    queries = sorted(p.stem for p in (project.dataset_dir(name) / "queries").glob("*.sql"))
    found = templates[name].find_resources("AWS::Athena::NamedQuery")
    assert sorted(q["Properties"]["Name"] for q in found.values()) == [f"pp-dw-{name}-{q}" for q in queries]


def test_a_new_folder_becomes_a_new_stack_without_code_changes(project_copy):
    from app import build_app, new_app

    source = project_copy / "datasets" / "ourairports"
    shutil.copytree(source, project_copy / "datasets" / "new-airports")
    # Gold tables are global: a copy of ourairports' models would take its tables' names (refused).
    shutil.rmtree(project_copy / "datasets" / "new-airports" / "gold")
    config = json.loads((source / "config.json").read_text())
    config.update(dataset="new-airports", schedule="rate(1 day)")
    (project_copy / "datasets" / "new-airports" / "config.json").write_text(json.dumps(config))

    app = build_app(load_project(project_copy), new_app())
    stack = app.node.try_find_child("pp-dw-dataset-new-airports")
    assert stack is not None
    template = Template.from_stack(stack)
    template.has_resource_properties("AWS::Glue::Job", {"Name": "pp-dw-bronze-new-airports"})
    template.has_resource_properties("AWS::Glue::Crawler", {"Name": "pp-dw-bronze-new-airports-crawler"})
    template.has_resource_properties(
        "AWS::Scheduler::Schedule", {"Name": "pp-dw-schedule-new-airports", "ScheduleExpression": "rate(1 day)"}
    )


GOLD = [name for name in DATASETS if list((ROOT / "datasets" / name / "gold").glob("*.sql"))]


def test_an_example_dataset_ships_chained_gold_models():
    assert GOLD, "an example dataset must ship gold models"


@pytest.mark.parametrize("name", GOLD)
def test_gold_job_and_one_crawler_target_per_model_unless_iceberg(templates, name):
    models = sorted(p.stem for p in (ROOT / "datasets" / name / "gold").glob("*.sql"))
    template = templates[name]
    template.has_resource_properties(
        "AWS::Glue::Job",
        {
            "Name": f"pp-dw-gold-{name}",
            "GlueVersion": "5.1",
            "Command": Match.object_like(
                {
                    "ScriptLocation": {
                        "Fn::Join": ["", ["s3://pp-dw-", {"Ref": "AWS::AccountId"}, f"/etl/{name}/glue/gold_job.py"]]
                    }
                }
            ),
            "DefaultArguments": Match.object_like({"--dataset": name, "--run_id": "auto"}),
        },
    )
    crawlers = template.find_resources("AWS::Glue::Crawler", {"Properties": {"Name": f"pp-dw-gold-{name}-crawler"}})
    if json.loads((ROOT / "datasets" / name / "config.json").read_text()).get("table_format") == "iceberg":
        assert crawlers == {}, "an Iceberg dataset's gold job commits its model tables: no crawler"
        return
    (crawler,) = crawlers.values()
    assert crawler["Properties"]["DatabaseName"] == "pp_dw_gold"
    paths = [json.dumps(t["Path"]) for t in crawler["Properties"]["Targets"]["S3Targets"]]
    assert len(paths) == len(models)
    for model in models:
        assert any(f"/gold/{table_name(name)}/{model}/" in p for p in paths)


@pytest.mark.parametrize("name", GOLD)
def test_pipeline_runs_bronze_then_gold(templates, name):
    (machine,) = templates[name].find_resources("AWS::StepFunctions::StateMachine").values()
    definition = json.loads(
        "".join(p if isinstance(p, str) else "" for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1])
    )
    states = definition["States"]
    # Which layers run is chosen by the input (tests/infra/test_pipeline_on_aws.py walks every case).
    assert definition["StartAt"] == "ReadInput"
    assert states["BronzeJobRun"]["Next"] == "RunGold"
    assert [c["Next"] for c in states["RunGold"]["Choices"]] == ["GoldJobRun"]
    assert states["BronzeJobRun"]["Arguments"]["JobName"] == f"pp-dw-bronze-{name}"
    assert states["GoldJobRun"]["Arguments"]["JobName"] == f"pp-dw-gold-{name}"
    assert states[states["GoldJobRun"]["Next"]]["Type"] == "Succeed"
    assert states["GoldJobRun"]["Retry"][0]["ErrorEquals"][0].startswith("Glue.")
