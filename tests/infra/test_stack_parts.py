"""The dataset stack's parts: a new source kind or layer is one class or one plan entry, never a
conditional to add in four places; a source kind without its triggers fails here, not at deploy."""

from __future__ import annotations

from dwlib.config import SOURCE_KEYS
from dwlib.naming import LAYERS, Naming
from stacks.layers import ARGUMENTS, plan_layers
from stacks.triggers import SOURCE_KINDS, DynamoDbTable, Landing, Triggers


def test_every_source_kind_the_config_accepts_has_its_triggers():
    assert set(SOURCE_KINDS) == set(SOURCE_KEYS)
    assert all(issubclass(kind, Triggers) for kind in SOURCE_KINDS.values())
    # Arrival of a drop starts the pipeline exactly for the kinds that drop files under raw/.
    assert {k for k, kind in SOURCE_KINDS.items() if kind.arrival} == {"landing", "dynamodb_table"}
    assert SOURCE_KINDS["landing"] is Landing and SOURCE_KINDS["dynamodb_table"] is DynamoDbTable


def test_every_layer_has_its_job_arguments():
    assert set(ARGUMENTS) == set(LAYERS)


def test_layer_plans(project):
    naming = Naming.of(project.core)
    parquet = plan_layers(naming, "shop", ["by_day", "by_week"], iceberg=False)
    assert [(p.layer, p.crawled) for p in parquet] == [
        ("bronze", (naming.bronze_prefix("shop"),)),
        ("gold", (naming.gold_prefix("shop", "by_day"), naming.gold_prefix("shop", "by_week"))),
    ]
    # An Iceberg table is committed by its job: no bronze crawler; without models, no gold layer.
    assert [(p.layer, p.crawled) for p in plan_layers(naming, "shop", [], iceberg=True)] == [("bronze", ())]


def test_the_state_graph_lists_states_as_the_cdk_does_and_refuses_unreachable_ones():
    """The definition is written in Python (stacks/pipeline.py); the golden templates prove the order on
    the real pipelines, this pins the rule: predecessors not yet listed first, then successors."""
    import pytest

    from stacks.pipeline import StateGraph

    graph = StateGraph()
    graph.add("Start", {"Type": "Pass", "Next": "Check"})
    graph.add("Done", {"Type": "Succeed"})
    graph.add("Work", {"Next": "Done", "Type": "Task", "Retry": [{"BackoffRate": 2.0}]})
    graph.add("Check", {"Type": "Choice", "Choices": [{"Next": "Work"}], "Default": "Done"})
    graph.wire("Start")
    ordered = graph.ordered("Start")
    assert list(ordered) == ["Start", "Check", "Done", "Work"]
    assert ordered["Work"]["Retry"] == [{"BackoffRate": 2}]  # as JSON.stringify prints 2.0
    graph.add("Orphan", {"Type": "Succeed"})
    with pytest.raises(ValueError, match="Orphan"):
        graph.ordered("Start")
