"""The webhook signature schemes and the signed links, as pure functions: a table of (request,
expected outcome) per scheme, and link tokens that survive a round trip and nothing else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from cloud.crm.messaging import tracking
from cloud.crm.messaging.tracking import SignedRequest, WebhookAuth

NOW = 1_764_950_000.0
S = "s3cr3t"
BODY = b"MessageSid=SM1&MessageStatus=delivered"
URL = "https://api.mallpulse.test/v1/messaging/webhooks/sms"


def _hmac_headers(ts: float, body: bytes = BODY, secret: str = S) -> dict[str, str]:
    sig = hmac.new(secret.encode(), f"{ts:.0f}".encode() + b"." + body, "sha256").hexdigest()
    return {"x-mallpulse-timestamp": f"{ts:.0f}", "x-mallpulse-signature": sig}


def _twilio(url: str = URL, secret: str = S) -> dict[str, str]:
    # Twilio's documented algorithm, written out independently of the code under test
    data = url + "MessageSidSM1MessageStatusdelivered"
    sig = base64.b64encode(hmac.new(secret.encode(), data.encode(), "sha1").digest()).decode()
    return {"x-twilio-signature": sig}


def _meta(body: bytes = BODY, secret: str = S) -> dict[str, str]:
    return {
        "x-hub-signature-256": "sha256=" + hmac.new(secret.encode(), body, "sha256").hexdigest()
    }


def _wechat(ts: float, nonce: str = "n0nce", token: str = S) -> dict[str, str]:
    parts = sorted([token, f"{ts:.0f}", nonce])
    sig = hashlib.sha1("".join(parts).encode()).hexdigest()
    return {"signature": sig, "timestamp": f"{ts:.0f}", "nonce": nonce}


CASES: list[tuple[str, str, dict[str, str], dict[str, str], bytes, str | None]] = [
    # (case, scheme, headers, query, body, expected failure reason or None)
    ("hmac ok", "hmac", _hmac_headers(NOW), {}, BODY, None),
    ("hmac 299 s old", "hmac", _hmac_headers(NOW - 299), {}, BODY, None),
    ("hmac stale", "hmac", _hmac_headers(NOW - 301), {}, BODY, "stale"),
    ("hmac future", "hmac", _hmac_headers(NOW + 301), {}, BODY, "stale"),
    ("hmac body changed", "hmac", _hmac_headers(NOW), {}, BODY + b"x", "mismatch"),
    ("hmac wrong secret", "hmac", _hmac_headers(NOW, secret="other"), {}, BODY, "mismatch"),
    ("hmac missing", "hmac", {}, {}, BODY, "missing"),
    ("hmac nan time", "hmac", {**_hmac_headers(NOW), "x-mallpulse-timestamp": "nan"}, {}, BODY,
     "stale"),
    ("twilio ok", "twilio", _twilio(), {}, BODY, None),
    ("twilio other url", "twilio", _twilio(URL + "x"), {}, BODY, "mismatch"),
    ("twilio field changed", "twilio", _twilio(), {}, BODY.replace(b"delivered", b"failed"),
     "mismatch"),
    ("twilio missing", "twilio", {}, {}, BODY, "missing"),
    ("meta ok", "meta", _meta(), {}, BODY, None),
    ("meta wrong secret", "meta", _meta(secret="x"), {}, BODY, "mismatch"),
    ("meta body changed", "meta", _meta(), {}, b"{}", "mismatch"),
    ("meta missing", "meta", {}, {}, BODY, "missing"),
    ("wechat ok", "wechat", {}, _wechat(NOW), BODY, None),
    ("wechat stale", "wechat", {}, _wechat(NOW - 1000), BODY, "stale"),
    ("wechat other nonce", "wechat", {}, {**_wechat(NOW), "nonce": "other"}, BODY, "mismatch"),
    ("wechat missing", "wechat", {}, {"timestamp": "1"}, BODY, "missing"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "scheme", "hdrs", "query", "body", "expected"), CASES)
def test_signature_schemes(
    case: str, scheme: Any, hdrs: dict[str, str], query: dict[str, str], body: bytes,
    expected: str | None,
) -> None:  # fmt: skip
    auth = WebhookAuth(scheme=scheme, secret=SecretStr(S))
    req = SignedRequest(url=URL, body=body, headers=hdrs, query=query)
    if expected is None:
        tracking.check_signature(auth, req, tolerance_s=300, now=NOW)
    else:
        with pytest.raises(tracking.SignatureError) as err:
            tracking.check_signature(auth, req, tolerance_s=300, now=NOW)
        assert err.value.reason == expected, case


def test_twilio_public_url_overrides_the_request_url() -> None:
    auth = WebhookAuth(scheme="twilio", secret=SecretStr(S), public_url=URL)
    req = SignedRequest(url="http://10.0.0.5:8000/internal", body=BODY, headers=_twilio(), query={})
    tracking.check_signature(auth, req, tolerance_s=300, now=NOW)


HTML = """<html><body><p>Hi <a href="https://shop.test/sale?a=1&amp;b=2">sale</a>
<a href='mailto:help@shop.test'>mail</a> <a href="#top">top</a>
<a data-notrack href="https://shop.test/private">private</a>
<a href="javascript:alert(1)">x</a></p></body></html>"""


def test_track_links_rewrites_http_links_and_adds_the_pixel() -> None:
    out = tracking.track_links(HTML, 42, S, "https://t.test")
    assert tracking.track_links(HTML, 42, S, "https://t.test") == out  # pure
    links = re.findall(r'href="https://t\.test/v1/messaging/t/c/([^"]+)"', out)
    assert len(links) == 1
    assert tracking.verify(S, "c", links[0]) == (42, "https://shop.test/sale?a=1&b=2")
    for kept in ("mailto:help@shop.test", "#top", "https://shop.test/private", "javascript:"):
        assert kept in out
    pixel = out.index("/v1/messaging/t/o/")
    assert pixel < out.index("</body>") and 'width="1"' in out


def test_a_page_without_body_gets_the_pixel_at_the_end() -> None:
    out = tracking.track_links('<a href="http://x.test/">x</a>', 1, S, "https://t.test/")
    assert out.endswith("/>") and "https://t.test/v1/messaging/t/c/" in out


@given(st.integers(min_value=1, max_value=2**63 - 1), st.sampled_from(["o", "c", "u"]),
       st.text(st.characters(codec="utf-8", exclude_characters="\\"), max_size=40)
       .map(lambda p: f"https://shop.test/{p}"))  # fmt: skip
def test_a_link_token_round_trips_and_any_change_breaks_it(mid: int, kind: str, url: str) -> None:
    target = url if kind == "c" else ""
    token = tracking.sign(S, kind, mid, target)
    assert tracking.verify(S, kind, token) == (mid, target)
    other_kind = {"o": "c", "c": "u", "u": "o"}[kind]
    with pytest.raises(tracking.BadLinkError):
        tracking.verify(S, other_kind, token)
    with pytest.raises(tracking.BadLinkError):
        tracking.verify("another secret", kind, token)
    body, mac = token.split(".")
    # the first character (the last may carry only padding bits that decoding ignores)
    flipped = ("B" if body[0] == "A" else "A") + body[1:]
    with pytest.raises(tracking.BadLinkError):
        tracking.verify(S, kind, f"{flipped}.{mac}")


def test_a_signed_non_http_target_is_still_refused() -> None:
    token = tracking.sign(S, "c", 5, "javascript:alert(1)")
    with pytest.raises(tracking.BadLinkError, match="http"):
        tracking.verify(S, "c", token)


def test_instrument_tracks_html_only_and_only_when_configured() -> None:
    from cloud.crm.messaging.templates import Rendered

    cfg = tracking.TrackingConfig(secret=SecretStr(S), base_url="https://t.test")
    html = Rendered(
        subject="s",
        text="Sale (https://x.test/)",
        html='<a href="https://x.test/">Sale</a>',
        locale="en",
    )
    out = tracking.instrument(html, 9, cfg)
    assert out.text == html.text and "https://t.test/v1/messaging/t/c/" in (out.html or "")
    assert "/v1/messaging/t/o/" in (out.html or "")
    text = Rendered(subject=None, text="hi https://x.test/", html=None, locale="en")
    assert tracking.instrument(text, 9, cfg) is text
