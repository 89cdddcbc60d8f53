"""The pixel's rules that need no storage: its GIF, what a signature covers, and who is a bot. Recording hits,
in process against a real Azurite, is in tests/integration/test_pixel_rules.py."""

from __future__ import annotations

import pytest

from shared.capture.visitors import is_bot
from shared.pixel.hits import GIF, canonical_query
from tests.factories import BROWSER_UA


def test_gif_is_a_1x1_gif():
    assert GIF[:6] == b"GIF89a" and GIF[6:10] == b"\x01\x00\x01\x00"


def test_signature_covers_the_path():
    assert canonical_query("a1", "b1", {"x": "1"}) != canonical_query("a1", "b2", {"x": "1"})
    assert canonical_query("a1", "b1", {"y": "2", "x": "1", "sig": "s"}) == "a1/b1?x=1&y=2"


@pytest.mark.parametrize(
    ("agent", "bot"),
    [
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", True),
        ("curl/8.5.0", True),
        ("python-httpx/0.28.1", True),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0", True),
        (BROWSER_UA, False),
        ("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", False),
    ],
)
def test_bot_detection(agent, bot):
    assert is_bot(agent) is bot
