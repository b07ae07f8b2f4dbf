"""What `dw validate` refuses in a source (issue 16): credentials in source_url, file sources that
cannot exist on Glue, and the options of source_auth, paging.total_field and archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from dwlib.config import ConfigError, DatasetConfig, discover_datasets

BASE = {"dataset": "shop-orders", "description": "Orders", "data_size_category": "small"}


def config(**fields) -> DatasetConfig:
    return DatasetConfig.model_validate({**BASE, **fields})


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:s3cr3t@example.com/orders.csv",
        "https://ghp_abcdef123456@example.com/orders.csv",
        "https://example.com/orders.csv?token=abc123",
        "https://example.com/orders.csv?format=csv&api_key=abc123",
        "https://example.com/orders.csv?apiKey=abc123",
        "https://acct.blob.core.windows.net/c/orders.csv?sv=2024-01-01&sig=abc%2Fdef",
        "https://b.s3.amazonaws.com/orders.csv?X-Amz-Algorithm=AWS4&X-Amz-Credential=AKIA%2F&X-Amz-Signature=ab12",
        "https://d111.cloudfront.net/orders.csv?Expires=1&Signature=abc&Key-Pair-Id=K2",
        "https://example.com/orders.csv?access_token=abc",
        "https://example.com/orders.csv?password=abc",
        "https://example.com/orders.csv#access_token=abc123",
        "s3://AKIAEXAMPLE:abc123@bucket/orders.csv",
        # names a credential takes in real APIs, in every spelling (a reviewer's list of what got through)
        "https://example.com/orders.csv?x-api-key=abc123",
        "https://example.com/orders.csv?X-API-KEY=abc123",
        "https://example.com/orders.csv?apiSecret=abc123",
        "https://example.com/orders.csv?clientSecret=abc123",
        "https://example.com/orders.csv?consumer_secret=abc123",
        "https://api.hubapi.com/orders.csv?hapikey=abc123",
        "https://api.openweathermap.org/data?q=x&appid=abc123",
        "https://example.com/orders.csv?AWSAccessKeyId=AKIA&Expires=1",
        "https://example.com/orders.csv?access_key_id=AKIA",
        "https://example.com/orders.csv?jwt=abc123",
        "https://example.com/orders.csv?passphrase=abc123",
        "https://example.com/orders.csv?license_key=abc123",
        "https://example.com/orders.csv?user_key=abc123",
        "https://example.com/orders.csv?oauth_signature=abc123",
        "https://example.com/orders.csv?sas_token=abc123",
        "https://example.com/orders.csv?Ocp-Apim-Subscription-Key=abc123",
        # a URL copied out of HTML, array syntax, ; as separator
        "https://example.com/orders.csv?format=csv&amp;api_key=abc123",
        "https://example.com/orders.csv?api_key[]=abc123",
        "https://example.com/orders.csv?format=csv;api_key=abc123",
    ],
)
def test_credentials_in_source_url_are_refused_with_advice(url):
    with pytest.raises(ValidationError) as caught:
        config(source_url=url)
    message = str(caught.value)
    assert "credential" in message and "source_auth" in message and "--dry-run" in message
    for secret in ("s3cr3t", "abc123", "ab12", "ghp_abcdef"):
        assert secret not in message.split("input_value")[0], message  # our words never quote the value


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/orders.csv?format=csv&sortKey=date",
        "https://example.com/export?monkey=1&keyword=x&page_size=10",
        "https://example.com/export?nextPageToken=x&continuationToken=y&partition_key=p&app_id=7",
        "https://example.com/export?SignatureVersion=4&auth_type=none",
        "s3://bucket/exports/orders.csv",
    ],
)
def test_ordinary_query_parameters_are_accepted(url):
    assert config(source_url=url).source_url == url


@pytest.mark.parametrize(
    "endpoint",
    [
        {"url": "https://api.example.org/items?api_key=abc123"},
        {"url": "https://api.example.org/items", "params": {"access_token": "abc123"}},
        {"url": "https://api.example.org/items", "params": {"X-Amz-Signature": "abc123"}},
        {"url": "https://bot:abc123@api.example.org/items"},
        {"url": "https://api.example.org/items", "params": {"x-api-key": "abc123"}},
        {"url": "https://api.example.org/items", "params": {"api_secret": "abc123"}},
        {"url": "https://api.example.org/items?appid=abc123"},
        {"url": "https://api.example.org/items?limit=1&amp;hapikey=abc123"},
        {"url": "https://api.example.org/items", "params": {"jwt": "abc123"}},
    ],
)
def test_credentials_in_an_api_endpoint_are_refused_with_advice(endpoint):
    with pytest.raises(ValidationError) as caught:
        config(api_endpoints=[endpoint])
    assert '"auth": {"secret": "pp-dw/NAME"' in str(caught.value)


def test_data_parameters_of_an_api_endpoint_are_accepted():
    params = {"sort_key": "date", "page_token": "x", "keyword": "rx", "limit": 10}
    assert config(api_endpoints=[{"url": "https://api.example.org/items?monkey=1", "params": params}])


def test_source_auth_joins_the_dataset_secrets_and_needs_an_http_source():
    auth = {"secret": "pp-dw/shop-download", "header": "X-Download-Key"}
    dataset = config(source_url="https://example.com/orders.csv", source_auth=auth)
    assert dataset.secrets == ["pp-dw/shop-download"]  # the stack grants GetSecretValue on exactly these
    assert dataset.source_auth.header_name == "X-Download-Key"
    for source in ({"source_url": "s3://bucket/orders.csv"}, {"landing": True}):
        with pytest.raises(ValidationError, match="source_auth sends a secret to an http\\(s\\) source_url"):
            config(**source, source_auth=auth)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///home/me/orders.csv", "a file:// path exists on this machine only, never on Glue"),
        ("file://localhost/tmp/x.csv", "a file:// path exists on this machine only"),
        ("/home/me/orders.csv", "a file elsewhere does not exist on Glue"),
        ("../other/orders.csv", "a file elsewhere does not exist on Glue"),
        ("C:\\data\\orders.csv", "a file elsewhere does not exist on Glue"),
        ("~/orders.csv", "a file elsewhere does not exist on Glue"),
        ("sample/orders.csv", "files in a folder named sample are not deployed to AWS"),
        ("./sample/orders.csv", "files in a folder named sample are not deployed to AWS"),
        ("data/sample/orders.csv", "files in a folder named sample are not deployed to AWS"),
        ("NOTES.md", "*.md files are not deployed to AWS"),
    ],
)
def test_file_sources_that_cannot_exist_on_glue_are_refused(url, message):
    with pytest.raises(ValidationError, match=message.replace("*", "\\*").replace("(", "\\(")):
        config(source_url=url)


def test_a_relative_file_that_links_out_of_the_folder_is_refused(tmp_path: Path):
    folder = tmp_path / "datasets" / "shop-orders"
    (folder / "data").mkdir(parents=True)
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("a\n1\n")
    (folder / "data" / "orders.csv").symlink_to(outside)
    (folder / "config.json").write_text(json.dumps({**BASE, "source_url": "data/orders.csv"}))
    with pytest.raises(ConfigError) as caught:
        discover_datasets(tmp_path)
    assert "source_url: 'data/orders.csv' leads out of" in str(caught.value)
    (folder / "data" / "orders.csv").unlink()
    (folder / "data" / "orders.csv").write_text("a\n1\n")
    assert "shop-orders" in discover_datasets(tmp_path)


def test_paging_total_field_and_archive_options():
    endpoint = {
        "url": "https://api.example.org/items",
        "paging": {"kind": "offset", "param": "offset", "size_param": "limit", "total_field": "meta.total"},
    }
    assert config(api_endpoints=[endpoint]).api_endpoints[0].paging.total_field == "meta.total"
    defaults = config(source_url="https://example.com/o.zip").archive
    assert defaults.max_unpacked_bytes == 20 * 1024**3 and defaults.max_ratio == 200
    tuned = config(source_url="https://example.com/o.zip", archive={"max_unpacked_bytes": 1000, "max_ratio": 50})
    assert (tuned.archive.max_unpacked_bytes, tuned.archive.max_ratio) == (1000, 50)
    with pytest.raises(ValidationError, match="max_ratio"):
        config(source_url="https://example.com/o.zip", archive={"max_ratio": 0.5})
    with pytest.raises(ValidationError, match="Extra inputs"):
        config(source_url="https://example.com/o.zip", archive={"max_bytes": 5})
