"""Values the CDK would give on every read, read once: each read is a call into the CDK's Node process.

`Aws.PARTITION`, `Aws.REGION`, `Aws.ACCOUNT_ID`, ... are static tokens, the same string for the whole
app; this `Aws` reads each one once and then answers from Python (make bench, synth).
"""

from __future__ import annotations

import functools

from aws_cdk import Aws as _Aws
from aws_cdk import Duration, Token
from aws_cdk import aws_scheduler as scheduler


class _Pseudo:
    def __getattr__(self, name: str) -> str:
        value = getattr(_Aws, name)
        setattr(self, name, value)
        return value


Aws = _Pseudo()


def s3_url(bucket_name: str, key: str | None = None) -> str:
    """What IBucket.s3_url_for_object(key) gives, joined in Python as the CDK joins it: a part's one
    trailing slash and the next part's one leading slash become one slash."""
    parts = ["s3://", bucket_name] + ([] if key is None else [key])
    url = parts[0]
    for part in parts[1:]:
        url = f"{url.removesuffix('/')}/{part.removeprefix('/')}"
    return url


# Immutable values the same for every stack, made once for the app instead of once a stack.
@functools.cache
def minutes(count: int) -> Duration:
    return Duration.minutes(count)


@functools.cache
def schedule_expression(expression: str) -> scheduler.ScheduleExpression:
    """ScheduleExpression.expression(expression): a value, shared by every schedule with that expression."""
    return scheduler.ScheduleExpression.expression(expression)


@functools.cache
def empty_input() -> scheduler.ScheduleTargetInput:
    """ScheduleTargetInput.from_object({}): every schedule's target input, the same value in each."""
    return scheduler.ScheduleTargetInput.from_object({})


@functools.cache
def is_unresolved(value: str) -> bool:
    """Token.is_unresolved of a string, which depends on the string alone."""
    return Token.is_unresolved(value)
