"""cdk-nag acknowledgments: every one names a rule, the exact finding, and why it is acceptable."""

from __future__ import annotations

import weakref

from aws_cdk import Acknowledgment, Validations
from constructs import IConstruct


def acknowledge(construct: IConstruct, rule: str, reason: str, findings: list[str] | None = None) -> None:
    """Acknowledge `rule` (one id per finding, as cdk-nag 3 requires) on a construct and its children."""
    # One call into the CDK's Node process for all the findings: each call is a round trip (make bench).
    Validations.of(construct).acknowledge(
        *(Acknowledgment(id=f"{rule}[{finding}]" if finding else rule, reason=reason) for finding in findings or [None])
    )


def acknowledge_all(construct: IConstruct, rules: list[tuple[str, str, list[str] | None]]) -> None:
    """Several (rule, reason, findings) on one construct in one call into the CDK's Node process."""
    Validations.of(construct).acknowledge(
        *(
            Acknowledgment(id=f"{rule}[{finding}]" if finding else rule, reason=reason)
            for rule, reason, findings in rules
            for finding in findings or [None]
        )
    )


_ENVIRONMENTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def read_environment(stack, parent, env) -> tuple[str, str, str]:
    """(partition, account, region) of a new stack, read once per parent and `env` given to it: a stack's
    are its env's, or else its parent stage's (or the pseudo parameters), so every stack of the app made
    with the same env has the same three strings. Three calls into the CDK's Node process (make bench, synth)."""
    fields = (
        env
        if isinstance(env, dict)
        else {"account": getattr(env, "account", None), "region": getattr(env, "region", None)}
    )
    key = (fields.get("account"), fields.get("region"))
    known = _ENVIRONMENTS.setdefault(parent, {})
    if key not in known:
        known[key] = (stack.partition, stack.account, stack.region)
    return known[key]


def environment(stack) -> tuple[str, str, str]:
    """(partition, account, region) of stack: as the stack read them once (DatasetStack), else read now."""
    known = getattr(stack, "environment_strings", None)
    return known if known is not None else (stack.partition, stack.account, stack.region)


def pseudo(stack, value: str, name: str) -> str:
    """How cdk-nag prints a stack attribute in a finding: the literal, or `<AWS::Name>` when unresolved."""
    from stacks.tokens import is_unresolved

    return f"<AWS::{name}>" if is_unresolved(value) else value


def partition(stack) -> str:
    from stacks.tokens import is_unresolved

    # With a concrete region CDK writes the partition literally (enablePartitionLiterals).
    return "<AWS::Partition>" if is_unresolved(environment(stack)[2]) else "aws"
