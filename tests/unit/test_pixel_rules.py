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
        # Bots the hand-written list missed, now from crawler-user-agents
        ("FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)", True),
        ("Mediapartners-Google", True),
        ("Mozilla/5.0 (compatible; Google-InspectionTool/1.0;)", True),
        ("ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)", True),
        ("Mozilla/4.5 (compatible; HTTrack 3.0x; Windows 98)", True),
        ("Mozilla/5.0 (compatible; heritrix/3.4.0 +http://archive.org)", True),
        ("Mozilla/5.0 (compatible; YandexImages/3.0; +http://yandex.com/bots)", True),
        # PackCloud's additions: HTTP libraries, automated browsers, link previewers
        ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", True),
        ("Go-http-client/2.0", True),
        (BROWSER_UA + " Playwright", True),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
        ("", True),
        (None, True),
        # Mail image proxies fetch for a person opening the mail, and a phone brand that says "bot" is a person
        ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", False),
        ("Mozilla/4.0 (compatible; ms-office; MSOffice 16)", False),
        ("Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18227; Pro)", False),
        ("Mozilla/5.0 (Linux; Android 13; CUBOT KINGKONG 9) AppleWebKit/537.36 (KHTML, like Gecko) Mobile", False),
    ],
)
def test_bot_detection(agent, bot):
    assert is_bot(agent) is bot
