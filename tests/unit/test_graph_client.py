"""The parts of the Graph client that need no server: the token scope, ids and paths, Retry-After, ranges."""

import email.utils
import time

import pytest
import requests

from shared.attachments.graph import (
    MAX_RETRY_AFTER_S,
    GraphRefused,
    _id,
    _next_range,
    _path,
    _retry_after,
    graph_tokens,
)
from shared.dataverse.client import AppCredentials

CREDENTIALS = AppCredentials("https://login.microsoftonline.com", "tenant", "client", "client_secret", "secret")


@pytest.mark.parametrize(
    ("url", "scope"),
    [
        ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default"),
        ("https://graph.microsoft.us/v1.0/", "https://graph.microsoft.us/.default"),
        ("https://microsoftgraph.chinacloudapi.cn/v1.0", "https://microsoftgraph.chinacloudapi.cn/.default"),
    ],
)
def test_graph_tokens_are_for_the_graph_origin(url, scope):
    assert graph_tokens(CREDENTIALS, url, requests.Session())._scope == scope


def test_paths_are_percent_encoded_per_segment():
    assert _path("lead/0001/attachment 1#2%.pdf") == "lead/0001/attachment%201%232%25.pdf"
    assert _path("Ünïcode/ä.txt") == "%C3%9Cn%C3%AFcode/%C3%A4.txt"


@pytest.mark.parametrize("value", ["", "a/b", "a b", "a?b", "x" * 301])
def test_ids_outside_the_pattern_are_refused(value):
    with pytest.raises(ValueError, match="site or drive id"):
        _id(value)


def answer(retry_after: str | None) -> requests.Response:
    response = requests.Response()
    response.status_code = 429
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def test_retry_after_in_seconds_or_as_a_date_or_the_default():
    assert _retry_after(answer("7"), 1.0) == 7.0
    assert _retry_after(answer(None), 4.0) == 4.0
    assert _retry_after(answer("soon"), 2.0) == 2.0
    assert _retry_after(answer("-3"), 2.0) == 2.0
    assert _retry_after(answer("nan"), 2.0) == 2.0
    assert _retry_after(answer("1e9"), 2.0) == MAX_RETRY_AFTER_S
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= _retry_after(answer(in_a_minute), 1.0) <= 60


def test_next_expected_ranges():
    assert _next_range({"nextExpectedRanges": ["0-"]}, 100) == (0, 100)
    assert _next_range({"nextExpectedRanges": ["40-59", "80-99"]}, 100) == (40, 60)
    for bad in ([], ["x"], ["100-"], ["50-40"], ["0-100"], None):
        with pytest.raises(GraphRefused, match="answer_unreadable"):
            _next_range({"nextExpectedRanges": bad}, 100)
