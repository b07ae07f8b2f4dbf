"""A refactor of stacks/ changes no template: the same stacks, logical IDs, resources and properties as the
golden files in tests/infra/golden/ (see tests/infra/golden.py), so a deploy of an existing stack
replaces, renames or updates nothing. A deliberate change regenerates them in its own commit."""

from __future__ import annotations

import difflib
import json

import pytest

from tests.infra.golden import CONFIGURATIONS, golden, synthesize


def differences(expected: dict[str, dict], actual: dict[str, dict], limit: int = 60) -> list[str]:
    """What a reviewer needs: stacks and logical IDs added or removed, then each changed resource's diff."""
    problems = []
    for stack in sorted(expected.keys() - actual.keys()):
        problems.append(f"stack {stack} is gone")
    for stack in sorted(actual.keys() - expected.keys()):
        problems.append(f"stack {stack} is new")
    for stack in sorted(expected.keys() & actual.keys()):
        old, new = expected[stack], actual[stack]
        for section in sorted(old.keys() | new.keys()):
            before, after = old.get(section, {}), new.get(section, {})
            if before == after:
                continue
            if not (isinstance(before, dict) and isinstance(after, dict)) or section == "Description":
                problems.append(f"{stack}: {section} changed: {before!r} -> {after!r}")
                continue
            for key in sorted(before.keys() - after.keys()):
                problems.append(f"{stack}: {section}.{key} is gone (a deploy would delete it)")
            for key in sorted(after.keys() - before.keys()):
                problems.append(f"{stack}: {section}.{key} is new")
            for key in sorted(before.keys() & after.keys()):
                if before[key] != after[key]:
                    diff = difflib.unified_diff(
                        json.dumps(before[key], indent=1, sort_keys=True).splitlines(),
                        json.dumps(after[key], indent=1, sort_keys=True).splitlines(),
                        "golden",
                        "now",
                        lineterm="",
                    )
                    lines = list(diff)
                    problems.append(f"{stack}: {section}.{key} changed:\n" + "\n".join(lines[:limit]))
    return problems


@pytest.mark.parametrize("configuration", sorted(CONFIGURATIONS))
def test_templates_are_the_golden_ones(configuration, tmp_path):
    expected = golden(configuration)
    assert expected, f"no golden templates for {configuration}: python -m tests.infra.golden --write"
    problems = differences(expected, synthesize(configuration, tmp_path))
    assert not problems, "\n\n".join(problems)


def test_the_comparison_names_what_changed():
    old = {"s": {"Resources": {"A": {"Type": "T", "Properties": {"Name": "a"}}, "B": {"Type": "T"}}}}
    new = {"s": {"Resources": {"A": {"Type": "T", "Properties": {"Name": "b"}}, "C": {"Type": "T"}}}, "t": {}}
    problems = differences(old, new)
    assert problems[0] == "stack t is new"
    assert "s: Resources.B is gone (a deploy would delete it)" in problems
    assert "s: Resources.C is new" in problems
    (changed,) = [p for p in problems if p.startswith("s: Resources.A changed")]
    assert '-  "Name": "a"' in changed and '+  "Name": "b"' in changed
