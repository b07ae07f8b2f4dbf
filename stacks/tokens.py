"""Values the CDK would give on every read, read once: each read is a call into the CDK's Node process.

`Aws.PARTITION`, `Aws.REGION`, `Aws.ACCOUNT_ID`, ... are static tokens, the same string for the whole
app; this `Aws` reads each one once and then answers from Python (make bench, synth).
"""

from __future__ import annotations

from aws_cdk import Aws as _Aws


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
