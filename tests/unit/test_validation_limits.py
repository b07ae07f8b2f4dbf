"""What AWS would refuse at deploy or run time is refused by validation first, one line per problem.

Schedules follow EventBridge Scheduler's documented grammar; every physical name of the core stack
and of each dataset's stack fits its service's limit and has one owner; query files map to distinct
resources. All of it goes through load_project, which `dw validate` and app.py both call.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dwlib.config import ConfigError, DatasetConfig, load_project, schedule_problem
from dwlib.naming import LIMITS, LONGEST_STAGE, MAX_STAGE_LENGTH, Naming, fit, query_construct_id

VALID = {
    "dataset": "shop-orders",
    "description": "Orders",
    "data_size_category": "small",
    "source_url": "https://example.com/orders.csv",
}
API_WITH_AUTH = {
    "api_endpoints": [{"url": "https://api.example.com/v1/items", "auth": {"secret": "pp-dw/key"}}],
}


def write_dataset(root: Path, name: str, extra: dict | None = None, files: dict[str, str] | None = None) -> Path:
    """A dataset folder; `files` maps a path inside it (queries/x.sql, gold/y.sql) to its text."""
    folder = root / "datasets" / name
    folder.mkdir(parents=True, exist_ok=True)
    config = {**VALID, "dataset": name, **(extra or {})}
    if {"api_endpoints", "landing", "dynamodb_table"} & set(config):
        config.pop("source_url")
    (folder / "config.json").write_text(json.dumps(config))
    for relative, text in (files or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)
    return folder


def problems(root: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_project(root)
    return [str(p) for p in caught.value.problems]


# ------------------------------------------------------------------ schedules


@pytest.mark.parametrize(
    "expr",
    [
        "cron(0 6 * * ? *)",
        "cron(0 18 ? * MON-FRI *)",
        "cron(0/15 * * * ? *)",
        "cron(*/5 8-17 ? * 2-6 *)",
        "cron(0 8 1 JAN,JUL ? *)",
        "cron(0 0 L * ? *)",
        "cron(0 0 LW * ? *)",
        "cron(0 0 15W * ? *)",
        "cron(0 10 ? * 6L 2030-2031)",
        "cron(0 0 ? * 3#2 *)",
        "rate(1 minute)",
        "rate(5 minutes)",
        "rate(1 hour)",
        "rate(12 hours)",
        "rate(1 day)",
        "rate(7 days)",
    ],
)
def test_schedules_the_scheduler_accepts_pass(expr):
    assert schedule_problem(expr) is None
    assert DatasetConfig.model_validate({**VALID, "schedule": expr}).schedule == expr


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("cron(0 6 * * * *)", "exactly one of them must be ?"),
        ("cron(0 6 ? * ? *)", "exactly one of them must be ?"),
        ("cron(0 6 * * ?)", "needs six fields (minutes hours day-of-month month day-of-week year), found 5"),
        ("cron(0 6 * * ? * *)", "found 7"),
        ("cron(0 6 * * ? 2030 1)", "found 7"),
        ("cron(0  6 * * ? *)", "separate the six cron() fields by single spaces"),
        ("cron(60 6 * * ? *)", "minutes value 60 is outside 0-59"),
        ("cron(0 24 * * ? *)", "hours value 24 is outside 0-23"),
        ("cron(0 6 0 * ? *)", "day-of-month value 0 is outside 1-31"),
        ("cron(0 6 32 * ? *)", "day-of-month value 32 is outside 1-31"),
        ("cron(0 6 * 13 ? *)", "month value 13 is outside 1-12"),
        ("cron(0 6 * JAN-FOO ? *)", "month value 'FOO' is not a number in 1-12 or JAN-DEC"),
        ("cron(0 6 ? * 0 *)", "day-of-week value 0 is outside 1-7"),
        ("cron(0 6 ? * MON-FUN *)", "day-of-week value 'FUN' is not a number in 1-7 or SUN-SAT"),
        ("cron(0 6 * * ? 1969)", "year value 1969 is outside 1970-2199"),
        ("cron(0 6 * * ? 2200)", "year value 2200 is outside 1970-2199"),
        ("cron(? 6 * * ? *)", "? is only allowed in day-of-month or day-of-week"),
        ("cron(0 6 ? * 2/2 *)", "day-of-week does not take / increments"),
        ("cron(0/0 6 * * ? *)", "minutes increment '0' is not a positive number"),
        ("cron(0 6 ? * 1#6 *)", "the number after # is the week of the month, 1-5"),
        ("cron(0 6 ? * 1#2,3 *)", "a # expression stands alone in its field"),
        ("cron(0 6 5L * ? *)", "day-of-month value '5L'"),
        ("cron(0 \uff16 * * ? *)", "hours value"),  # a full-width digit is not a digit to AWS
        ("rate(1 days)", "rate(1 days) needs the singular unit: write rate(1 day)"),
        ("rate(2 day)", "rate(2 day) needs the plural unit: write rate(2 days)"),
        ("rate(1 hours)", "write rate(1 hour)"),
        ("rate(0 hours)", "rate value '0' must be a whole number of at least 1"),
        ("rate(-1 day)", "rate value '-1' must be a whole number of at least 1"),
        ("rate(1.5 hours)", "rate value '1.5'"),
        ("rate(1 week)", "rate unit 'week' is not one of minute(s), hour(s), day(s)"),
        ("rate(1 dayss)", "rate unit 'dayss'"),
        ("at(2030-01-01T00:00:00)", "is a one-time at() schedule"),
        ("every day", "is not an EventBridge Scheduler expression"),
        ("cron(0 6 * * ? *) ", "is not an EventBridge Scheduler expression"),
        ("cron(" + "1," * 130 + "0 6 * * ? *)", "EventBridge Scheduler takes at most 256"),
    ],
)
def test_schedules_the_scheduler_refuses_are_refused_with_advice(project_copy, expr, message):
    assert message in (schedule_problem(expr) or ""), schedule_problem(expr)
    write_dataset(project_copy, "shop-orders", {"schedule": expr})
    lines = [p for p in problems(project_copy) if p.startswith("datasets/shop-orders/config.json: schedule: ")]
    assert len(lines) == 1, lines
    assert message in lines[0] and "(or leave schedule out to run on demand)" in lines[0]


# ------------------------------------------------------------------ names that collide


def test_a_dataset_whose_own_role_takes_the_shared_roles_name_is_refused(project_copy):
    write_dataset(project_copy, "glue", API_WITH_AUTH)
    found = problems(project_copy)
    assert found == [
        "datasets/glue/config.json: dataset: IAM role name 'pp-dw-glue-job-role' of dataset glue (its own job role) "
        "is already that of the core stack pp-dw-core (the shared Glue job role); AWS names must be unique: "
        "rename the dataset (and its folder)"
    ]


def test_the_same_name_without_a_role_of_its_own_is_fine(project_copy):
    write_dataset(project_copy, "glue")
    assert "glue" in load_project(project_copy).datasets


def test_named_queries_of_two_datasets_that_share_a_name_are_refused(project_copy):
    write_dataset(project_copy, "ab", files={"queries/cd-x.sql": "SELECT 1"})
    write_dataset(project_copy, "ab-cd", files={"queries/x.sql": "SELECT 1"})
    found = problems(project_copy)
    assert found == [
        "datasets/ab-cd/queries/x.sql: Athena named query name 'pp-dw-ab-cd-x' of dataset ab-cd "
        "(datasets/ab-cd/queries/x.sql) is already that of dataset ab (datasets/ab/queries/cd-x.sql); "
        "AWS names must be unique: rename the file"
    ]


def test_gold_models_of_two_datasets_with_one_name_are_refused(project_copy):
    for name in ("shop-a", "shop-b"):
        write_dataset(project_copy, name, files={"gold/totals.sql": "SELECT 1 AS x"})
    found = problems(project_copy)
    assert found == [
        "datasets/shop-b/gold/totals.sql: Glue table name 'pp_dw_gold.totals' of dataset shop-b "
        "(datasets/shop-b/gold/totals.sql) is already that of dataset shop-a (datasets/shop-a/gold/totals.sql); "
        "AWS names must be unique: rename the file"
    ]


@pytest.mark.parametrize(
    ("first", "second"),
    [("a_b", "a-b"), ("demo", "Demo"), ("a1b", "a1_b"), ("daily_total", "daily-total")],
)
def test_query_files_that_map_to_one_resource_are_refused(project_copy, first, second):
    assert query_construct_id(first) == query_construct_id(second)
    write_dataset(project_copy, "shop-orders", files={f"queries/{s}.sql": "SELECT 1" for s in (first, second)})
    found = problems(project_copy)
    assert len(found) == 1, found
    later, earlier = sorted((first, second), reverse=True)
    assert found[0].startswith(f"datasets/shop-orders/queries/{later}.sql: maps to the same Athena named query")
    assert f"as queries/{earlier}.sql" in found[0] and "rename one of them" in found[0]


# ------------------------------------------------------------------ names over their limits


def every_resource(naming: Naming, dataset: str, stem: str = "q") -> list:
    return naming.dataset_resources(
        dataset, models=[stem], queries=[stem], own_role=True, schedule=True, export=True, arrival=True
    )


def longest_accepted(root: Path, extra: dict) -> int:
    """The longest dataset name load_project accepts, found by trying every length."""
    accepted = 0
    for length in range(2, 80):
        name = "d" * length
        folder = write_dataset(root, name, extra, {"queries/q.sql": "SELECT 1", "gold/q.sql": "SELECT 1 AS x"})
        try:
            load_project(root)
            accepted = length
        except ConfigError:
            pass
        shutil.rmtree(folder)
    return accepted


class Core:
    etl_resource_prefix, database_prefix = "pp-dw", "pp_dw"


def test_the_longest_accepted_dataset_name_fits_every_limit_in_every_stage(project_copy):
    longest = longest_accepted(project_copy, {**API_WITH_AUTH, "schedule": "rate(1 day)"})
    # The EventBridge rule names are the tightest, measured in a stage of the longest allowed name.
    assert longest == 64 - len(f"pp-dw-{LONGEST_STAGE}-job-failures-") == 36
    for stage in ("", "dev", "prod", LONGEST_STAGE):
        naming = Naming.of(Core(), stage)
        for resource in every_resource(naming, "d" * longest) + naming.core_resources():
            assert len(resource.name) <= LIMITS[resource.kind].max_length, resource
    staged = Naming.of(Core(), LONGEST_STAGE)
    assert any(len(r.name) > LIMITS[r.kind].max_length for r in every_resource(staged, "d" * (longest + 1))), (
        "one character more must break a limit"
    )
    assert MAX_STAGE_LENGTH == 8  # documented in the README ("Stages")


def test_a_dataset_name_over_a_limit_says_which_name_and_how_long_it_may_be(project_copy):
    name = "d" * 50
    write_dataset(project_copy, name, {**API_WITH_AUTH, "schedule": "rate(1 day)"})
    found = problems(project_copy)
    label = f"datasets/{name}/config.json: dataset: "
    assert all(line.startswith(label) for line in found), found
    assert any(
        f"makes the EventBridge rule name 'pp-dw-job-failures-{name}' 69 characters (78 in a stage of 8 "
        "characters, the longest stage name allowed), over AWS's limit of 64; "
        "shorten the dataset name (and its folder) to at most 36 characters" in line
        for line in found
    ), found
    assert any("IAM role name" in line for line in found)
    assert any("EventBridge Scheduler schedule name" in line for line in found)


def test_a_longer_prefix_leaves_less_room(project_copy):
    core = json.loads((project_copy / "config.json").read_text())
    core["etl_resource_prefix"] = "p" * 22  # the longest the core config allows
    (project_copy / "config.json").write_text(json.dumps(core))
    longest = longest_accepted(project_copy, {})
    assert longest == 64 - len("p" * 22 + f"-{LONGEST_STAGE}-job-failures-")
    for resource in Naming(f"{'p' * 22}-{LONGEST_STAGE}", f"pp_dw_{LONGEST_STAGE}").core_resources():
        assert len(resource.name) <= LIMITS[resource.kind].max_length, resource


def test_a_query_file_name_over_the_named_query_limit_is_refused(project_copy):
    stem = "q" * 120
    write_dataset(project_copy, "shop-orders", files={f"queries/{stem}.sql": "SELECT 1"})
    found = problems(project_copy)
    assert found == [
        f"datasets/shop-orders/queries/{stem}.sql: makes the Athena named query name "
        f"'pp-dw-shop-orders-{stem}' 138 characters (147 in a stage of 8 characters, the longest stage name "
        "allowed), over AWS's limit of 128; shorten the file name to at most 101 characters"
    ]


def test_generated_descriptions_are_cut_to_their_limit():
    table = "t" * 255  # the longest DynamoDB table name
    text = fit("lambda_function_description", f"Exports DynamoDB table {table} as CSV for the x pipeline")
    assert len(text) == LIMITS["lambda_function_description"].max_length and text.endswith("...")
    crawler = fit("glue_crawler_description", "Catalogs from " + "gold/é/, " * 400)
    assert len(crawler.encode("utf-8")) <= LIMITS["glue_crawler_description"].max_length  # Glue counts bytes
    assert fit("glue_crawler_description", "short") == "short"


def test_problems_of_every_kind_are_listed_at_once(project_copy):
    write_dataset(project_copy, "glue", {**API_WITH_AUTH, "schedule": "rate(2 day)"})
    write_dataset(project_copy, "d" * 50)
    found = problems(project_copy)
    assert any(p.startswith("datasets/glue/config.json: schedule: ") for p in found)
    assert any(p.startswith(f"datasets/{'d' * 50}/config.json: dataset: makes the") for p in found)


def test_a_declared_column_name_over_glues_limit_is_refused(project_copy):
    column = "c" * 256
    write_dataset(project_copy, "shop-orders", {"columns": {column: "int", "price": "double"}})
    found = problems(project_copy)
    assert found == [
        f"datasets/shop-orders/config.json: columns.{'c' * 40}…: is 256 characters; Glue and Athena column names "
        "take at most 255: declare a shorter name"
    ]


def test_a_description_the_cdk_would_refuse_in_the_stack_description_is_refused(project_copy):
    # The CDK refuses a stack description over 1024 bytes counted in UTF-16: 250 four-byte characters
    # (which the config allows) and the dataset name are over it, though AWS counts only 1000 + UTF-8 bytes.
    description = "\U0001f4e6" * 250
    write_dataset(project_copy, "shop-orders", {"description": description})
    assert problems(project_copy) == [
        "datasets/shop-orders/config.json: description: makes the CloudFormation stack description "
        f"'shop-orders: {description}' 1026 bytes (UTF-16, as the CDK counts them), over AWS's limit of 1024; "
        "shorten description to at most 998 bytes (UTF-16, as the CDK counts them)"
    ]
    description = "\U0001f4e6" * 249 + "x"
    write_dataset(project_copy, "shop-orders", {"description": description})
    assert "shop-orders" in load_project(project_copy).datasets  # 26 + 996 + 2 = 1024: fits


# ------------------------------------------------------------------ stages side by side


@pytest.mark.parametrize("stage", ["alarm", "failures", "bronze", "gold", "glue", "dataset", "pipeline", "job"])
def test_a_stage_named_like_a_word_of_the_names_is_refused(project, stage):
    """`-c stage=alarm` would make pp-dw-alarm-…, which the default stage's alarms already are."""
    with pytest.raises(ValueError) as caught:
        Naming.of(project.core, stage)
    message = str(caught.value)
    assert f"stage {stage!r} is a word" in message and "{prefix}-" + stage in message and "pick another" in message


def test_a_dataset_starting_with_a_stage_name_may_not_take_that_stage_s_names(project_copy):
    """Default dataset dev-glue's own role would be stage dev's shared job role: refused, whichever comes first."""
    write_dataset(project_copy, "dev-glue", API_WITH_AUTH)
    found = [p for p in problems(project_copy) if "dev-glue" in p]
    assert any(
        "IAM role name 'pp-dw-dev-glue-job-role'" in p and "stage 'dev'" in p and "the shared Glue job role" in p
        and "make deploy STAGE=dev" in p for p in found
    ), found  # fmt: skip


def test_named_queries_of_a_dataset_named_after_a_stage_are_refused(project_copy):
    """Default dataset dev-xy's query q and stage dev's dataset xy's query q would both be pp-dw-dev-xy-q."""
    write_dataset(project_copy, "dev-xy", files={"queries/q.sql": "SELECT 1"})
    write_dataset(project_copy, "xy", files={"queries/q.sql": "SELECT 1"})
    assert any("'pp-dw-dev-xy-q'" in p and "stage 'dev'" in p for p in problems(project_copy))


def test_datasets_starting_with_a_stage_name_are_fine_when_no_name_collides(project_copy):
    write_dataset(project_copy, "dev-orders", {"schedule": "rate(1 day)"}, files={"queries/q.sql": "SELECT 1"})
    load_project(project_copy)


def test_whenever_two_stages_would_share_a_name_validation_refuses(project):
    """The class, not the examples: hostile dataset and stage names; every pair of copies that validation
    lets through has disjoint names."""
    from dwlib.config import cross_stage_problems
    from dwlib.naming import check_stage, name_words

    datasets = ["dev-glue", "glue", "alarm-x", "x", "dev-x", "dev", "bronze-dev", "prod-glue-x", "glue-x", "p1-a"]
    parts = dict(models=["m"], queries=["q", "x-q"], own_role=True, schedule=True, export=True, arrival=True)
    stages = sorted({*name_words(), *(d.split("-")[0] for d in datasets), "dev", "prod", "p1", "s2"})

    def names(stage: str, chosen: list[str]) -> set[tuple[str, str, str]]:
        naming = Naming.of(project.core, stage)
        found = list(naming.core_resources())
        for dataset in chosen:
            found += naming.dataset_resources(dataset, **parts)
        return {(r.kind, r.scope, r.name) for r in found if not r.kind.endswith("_description")}

    accepted = []
    for stage in stages:
        try:
            accepted.append(check_stage(stage))
        except ValueError:
            assert stage in name_words() or not stage[0].isalpha()
    assert {"dev", "prod", "p1", "x"} <= set(accepted) and "alarm" not in accepted
    for size in range(1, len(datasets) + 1):
        chosen = datasets[:size]
        default = Naming.of(project.core)
        resources = list(default.core_resources())
        for dataset in chosen:
            resources += default.dataset_resources(dataset, **parts)
        refused = bool(cross_stage_problems(project.core, resources, {d: parts for d in chosen}))
        for i, stage in enumerate(accepted):
            for other in ["", *accepted[i + 1 :]]:
                shared = names(stage, chosen) & names(other, chosen)
                assert not shared or (refused and other == ""), (chosen, stage, other, sorted(shared)[:3])


def test_the_readme_lists_exactly_the_refused_stage_names():
    import re

    from dwlib.naming import name_words

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (listed,) = re.findall(r"right after the prefix\n\(`([a-z\s]+)`\)", text)
    assert listed.split() == sorted(name_words())


def test_the_stage_tag_of_the_unstaged_copy_is_not_a_stage_name():
    """The copy without a stage is tagged stage=default: a stage named so would share its cost reports."""
    from dwlib.naming import check_stage

    with pytest.raises(ValueError, match="stage 'default' is the name the copy without a stage goes by"):
        check_stage("default")
    assert check_stage("defaults") == "defaults"


@pytest.mark.parametrize("prefix", ["xn--dw", "sthree", "sthree-dw", "amzn-s3-demo", "amzn-s3-demo-x"])
def test_a_prefix_s3_refuses_to_start_a_bucket_name_is_refused(project_copy, prefix):
    core = json.loads((project_copy / "config.json").read_text())
    core["etl_resource_prefix"] = prefix
    (project_copy / "config.json").write_text(json.dumps(core))
    with pytest.raises(ConfigError) as caught:
        load_project(project_copy)
    (problem,) = caught.value.problems
    assert (problem.file, problem.field) == ("config.json", "etl_resource_prefix")
    assert f"the lake's bucket names start with {prefix}-, and S3 refuses bucket names starting with" in problem.message


@pytest.mark.parametrize("model", ["Bad-Name", "2020_orders", "orders-by-day", "_x"])
def test_synth_refuses_a_gold_model_name_that_is_not_a_table_name(project_copy, model):
    """Not only `dw validate`: `cdk deploy` loads the project too, and a crawler target gold/DATASET/Bad-Name/
    or an Athena table named so would fail on AWS, not here."""
    write_dataset(project_copy, "shop-orders", files={f"gold/{model}.sql": "SELECT 1 AS one"})
    with pytest.raises(ConfigError) as caught:
        load_project(project_copy)
    (problem,) = caught.value.problems
    assert problem.file == f"datasets/shop-orders/gold/{model}.sql"
    assert f"model name {model!r} must be lowercase letters, digits and _, starting with a letter" in problem.message
