"""Every physical name in a set of templates: each property whose key ends in "Name" (at any depth),
as deployed with the pseudo parameters filled in; references to other resources are not names."""

from __future__ import annotations

PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}
# Properties ending in "Name" that are no physical name of the app: Glue's command (always glueetl),
# a policy's name (unique only within its role), the metric an alarm reads, a table's name (unique
# only within its database, which is the stage's own).
NOT_OURS = {
    ("AWS::Glue::Job", "Command.Name"),
    ("AWS::IAM::Policy", "PolicyName"),
    ("AWS::CloudWatch::Alarm", "MetricName"),
    ("AWS::Glue::Table", "TableInput.Name"),
}


def _resolve(value):
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value.get("Ref") in PSEUDO:
        return PSEUDO[value["Ref"]]
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        resolved = [_resolve(p) for p in parts]
        return None if None in resolved else separator.join(resolved)
    return None  # a Ref/GetAtt of another resource: not a chosen name


def _walk(kind: str, path: str, value, found: dict) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            here = f"{path}.{key}" if path else key
            if key.endswith("Name") and (kind, here) not in NOT_OURS:
                name = _resolve(inner)
                if name is not None:
                    found.setdefault(f"{kind} {here}", set()).add(name)
            _walk(kind, here, inner, found)


def physical_names(templates: dict[str, dict]) -> dict[str, list[str]]:
    """{"AWS::S3::Bucket BucketName": [names...], "stack": [stack names]}, for stacks by name -> template.
    CDK's own helper resources (Custom::…, their asset bucket) are left out: they are not the app's names."""
    found: dict[str, set[str]] = {"stack": set(templates)}
    for template in templates.values():
        for resource in template.get("Resources", {}).values():
            if not resource["Type"].startswith("Custom::"):
                _walk(resource["Type"], "", resource.get("Properties", {}), found)
    return {kind: sorted(names) for kind, names in sorted(found.items())}
