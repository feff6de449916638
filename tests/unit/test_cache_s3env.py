"""Endpoint, region and keys read from the environment in boto3's order, and the engine setting."""

from __future__ import annotations

import pytest

from preheat.cache.s3env import StaticCredentials, target_from
from preheat.exceptions import ConfigurationError
from preheat.settings import Settings

KEYS = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret"}


def test_service_endpoint_wins_over_the_general_one() -> None:
    env = {"AWS_ENDPOINT_URL_S3": "http://s3.local:9000/", "AWS_ENDPOINT_URL": "http://all:1"}
    assert target_from(env).endpoint == "http://s3.local:9000"
    assert target_from({"AWS_ENDPOINT_URL": "https://all:1"}).endpoint == "https://all:1"


def test_configured_endpoints_ignored_when_boto3_is_told_to() -> None:
    env = {
        "AWS_ENDPOINT_URL_S3": "http://s3.local:9000",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true",
    }
    assert target_from(env).endpoint is None


def test_no_endpoint_means_aws_with_virtual_hosts_except_dotted_buckets() -> None:
    target = target_from({})
    assert target.endpoint is None and not target.allow_http
    assert not target.path_style("models")
    assert target.path_style("my.models")


def test_custom_endpoint_is_path_style_and_http_only_when_it_says_http() -> None:
    assert target_from({"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5000"}).allow_http
    secure = target_from({"AWS_ENDPOINT_URL_S3": "https://minio.local"})
    assert not secure.allow_http and secure.path_style("models")


def test_region_default_region_first_then_lambdas_then_us_east_1() -> None:
    both = {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-central-1"}
    assert target_from(both).region == "eu-west-1"
    assert target_from({"AWS_REGION": "ap-south-1"}).region == "ap-south-1"
    assert target_from({"AWS_REGION": "  "}).region == "us-east-1"


def test_lambda_keys_come_with_their_session_token() -> None:
    creds = target_from({**KEYS, "AWS_SESSION_TOKEN": "tok"}).credentials
    assert creds == StaticCredentials("AKID", "secret", "tok")
    assert target_from(KEYS).credentials == StaticCredentials("AKID", "secret", None)


def test_half_a_key_pair_is_no_keys_so_botocores_chain_decides() -> None:
    assert target_from({"AWS_ACCESS_KEY_ID": "AKID"}).credentials is None
    assert target_from({}).credentials is None


def test_engine_setting_from_env_and_its_error_names_the_variable() -> None:
    assert Settings.from_env(env={}).fetch_engine == "auto"
    assert Settings.from_env(env={"PREHEAT_FETCH_ENGINE": "BotoCore"}).fetch_engine == "botocore"
    with pytest.raises(ConfigurationError, match="PREHEAT_FETCH_ENGINE"):
        Settings.from_env(env={"PREHEAT_FETCH_ENGINE": "curl"})
    with pytest.raises(ConfigurationError, match="fetch_engine"):
        Settings(fetch_engine="curl")
