"""S3's answers that moto never gives, as S3 sends them, read by botocore's own parser."""

from __future__ import annotations

from botocore.awsrequest import AWSResponse
from botocore.parsers import create_parser

# S3's answer to a conditional write while another conditional write to the key is under way.
CONFLICT_409 = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting '
    b"operation occurred. If using PutObject you can retry the request. If using multipart upload you should "
    b"initiate another CreateMultipartUpload request and re-upload each part.</Message><RequestId>4442587FB7D0A2F9"
    b"</RequestId><HostId>EXAMPLEhostid</HostId></Error>"
)


def answer_409(client, operation: str, key_end: str, times: int, answered: list[int] | None = None) -> list[int]:
    """Answer the first `times` calls of `operation` (`PutObject`, `DeleteObject`) on a key ending in `key_end` with
    409 ConditionalRequestConflict, before moto sees them; `answered` (shared by clients, if given) lists them."""
    answered = [] if answered is None else answered

    def conflict(params, model, **_):
        if params["url_path"].split("?")[0].endswith(key_end) and len(answered) < times:
            answered.append(409)
            wire = {"status_code": 409, "headers": {"content-type": "application/xml"}, "body": CONFLICT_409}
            return AWSResponse(params["url"], 409, wire["headers"], None), create_parser("rest-xml").parse(
                wire, model.output_shape
            )
        return None

    client.meta.events.register_first(f"before-call.s3.{operation}", conflict)
    return answered


def lose_first_reply(
    client, operation: str, key_end: str, resent: list[int] | None = None, also=lambda request: True
) -> list[int]:
    """Lose S3's reply to the first call of `operation` on a key ending in `key_end` (and for which `also(request)`
    holds): S3 did what it was asked, and botocore sends the request again at once, as after a connection reset.
    `resent` (shared by clients, if given) gets the status of the reply lost."""
    resent = [] if resent is None else resent

    def lose(request_dict, response, **_):
        if request_dict["url_path"].endswith(key_end) and also(request_dict) and not resent and response is not None:
            resent.append(response[0].status_code)
            return 0
        return None

    client.meta.events.register_first(f"needs-retry.s3.{operation}", lose)
    return resent
