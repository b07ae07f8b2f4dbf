"""API auth and explode in the dataset config: validated once, worded as advice."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dwlib.config import ApiEndpoint, DatasetConfig
from dwlib.naming import Naming
from dwlib.secrets import env_name

URL = "https://api.example.org/v1/items"


def endpoint(**auth) -> ApiEndpoint:
    return ApiEndpoint.model_validate({"url": URL, "auth": auth})


def test_auth_goes_in_a_header_by_default_or_in_the_query():
    assert endpoint(secret="pp-dw/k").auth.header_name == "Authorization"
    assert endpoint(secret="pp-dw/k", header="X-Api-Key").auth.header_name == "X-Api-Key"
    bearer = endpoint(secret="pp-dw/k", scheme="Bearer").auth
    assert (bearer.header_name, bearer.scheme) == ("Authorization", "Bearer")
    query = endpoint(secret="pp-dw/k", query_param="api_key").auth
    assert (query.header_name, query.query_param) == (None, "api_key")


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ({"secret": "k", "header": "X-Key", "query_param": "key"}, "give 'header' or 'query_param', not both"),
        (
            {"secret": "k", "query_param": "key", "scheme": "Bearer"},
            r"'scheme' \(such as Bearer\) only applies to a header",
        ),
        ({"secret": "my key!"}, "is not a Secrets Manager name"),
        ({"secret": "k", "header": "X Key"}, "is not an HTTP header name"),
        ({"header": "X-Key"}, "Field required"),
        ({"secret": "k", "value": "plain-text"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_auth_is_refused(auth, message):
    with pytest.raises(ValidationError, match=message):
        endpoint(**auth)


def test_the_auth_parameter_cannot_also_be_a_plain_parameter():
    with pytest.raises(ValidationError, match="auth.query_param 'api_key' is also in params or paging"):
        ApiEndpoint.model_validate(
            {"url": URL, "params": {"api_key": "x"}, "auth": {"secret": "k", "query_param": "api_key"}}
        )


def test_a_dataset_lists_its_secrets_once():
    config = DatasetConfig.model_validate(
        {
            "dataset": "two-apis",
            "description": "d",
            "data_size_category": "small",
            "api_endpoints": [
                {"url": URL, "auth": {"secret": "pp-dw/b"}},
                {"url": URL, "auth": {"secret": "pp-dw/a", "query_param": "key"}},
                {"url": URL, "auth": {"secret": "pp-dw/b"}},
                {"url": URL},
            ],
            "explode": ["items", "order_lines"],
        }
    )
    assert config.secrets == ["pp-dw/a", "pp-dw/b"]
    assert config.explode == ["items", "order_lines"]


def test_explode_takes_cleaned_names():
    with pytest.raises(ValidationError, match="is not a cleaned column name"):
        DatasetConfig.model_validate(
            {"dataset": "x-y", "description": "d", "data_size_category": "small", "landing": True, "explode": ["Items"]}
        )


def test_names_of_secrets_and_roles():
    assert env_name("pp-dw/fda-api-key") == "DW_SECRET_PP_DW_FDA_API_KEY"
    assert env_name("team.key@v2") == "DW_SECRET_TEAM_KEY_V2"
    assert Naming("pp-dw", "pp_dw").dataset_job_role("fda-enforcement") == "pp-dw-fda-enforcement-job-role"
    with pytest.raises(ValueError, match="over IAM's 64"):
        Naming("pp-dw", "pp_dw").dataset_job_role("a" * 60)
    assert Naming("pp-dw", "pp_dw").transform_hook_key("epa-daily-aqi") == "etl/epa-daily-aqi/transform.py"
