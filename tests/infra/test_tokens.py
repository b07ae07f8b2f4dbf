"""stacks.tokens answers from Python what the CDK would answer: the same strings, so the same templates."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from stacks.tokens import Aws, s3_url


@pytest.mark.parametrize("key", [None, "", "bronze/", "bronze/x/", "/lead", "a//b/", "etl/x/wheels/p-1.whl"])
def test_s3_url_is_the_cdks(key):
    stack = cdk.Stack(cdk.App(), "S")
    name = f"pp-dw-{Aws.ACCOUNT_ID}-lake"
    bucket = s3.Bucket.from_bucket_name(stack, "B", name)
    expected = bucket.s3_url_for_object(key) if key is not None else bucket.s3_url_for_object()
    assert stack.resolve(s3_url(name, key)) == stack.resolve(expected)


def test_pseudo_parameters_are_the_cdks_tokens():
    stack = cdk.Stack(cdk.App(), "S")
    for name in ("PARTITION", "REGION", "ACCOUNT_ID"):
        assert getattr(Aws, name) == getattr(cdk.Aws, name)
        assert stack.resolve(getattr(Aws, name)) == stack.resolve(getattr(cdk.Aws, name))
