"""Properties of the adapters' parsing (hypothesis): webhooks of any shape, and provider answers of
any status and any JSON body, give a receipt, an inbound message, a provider id or a ChannelError,
never another exception (never a crash, never a 500 upstream); a Retry-After header of any text
gives a finite wait within bounds."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloud.crm.messaging.channels.base import (
    Channel,
    ChannelError,
    DeliveryReceipt,
    InboundMessage,
    OutboundMessage,
    build_channel,
    parse_config,
)
from cloud.crm.messaging.channels.http import MAX_RETRY_AFTER_S, retry_after
from tests.support import providers as prov

from ..test_channel_contract import HTTP_TYPES

CONFIGS = [
    {"type": "twilio", "account_sid": "AC1", "auth_token": "t", "from_number": "+14155552671"},
    {"type": "aliyun_sms", "access_key_id": "LTAI1", "access_key_secret": "s", "sign_name": "M"},
    {"type": "whatsapp", "phone_number_id": "1065", "access_token": "t"},
    {"type": "wechat", "app_id": "wx01", "app_secret": "s"},
]
CHANNELS: list[Channel] = [build_channel(parse_config(c)) for c in CONFIGS]

leaf = (
    st.none()
    | st.booleans()
    | st.integers(-5, 200_000)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.sampled_from(["delivered", "read", "failed", "sent", "text"])
)
anything = st.recursive(leaf, lambda x: st.lists(x, max_size=2) | st.dictionaries(
    st.text(max_size=4), x, max_size=2), max_leaves=4)  # fmt: skip


def shaped(**fields: Any) -> Any:
    """A dict with any subset of these fields, or anything at all in its place."""
    return st.fixed_dictionaries({}, optional=fields) | anything


def some(inner: Any) -> Any:
    """A short list of `inner`, or anything at all in its place."""
    return st.lists(inner, max_size=2) | anything


status = shaped(id=leaf, status=leaf, errors=some(shaped(code=leaf, title=leaf)))
message = shaped(id=leaf, type=leaf, text=shaped(body=leaf), image=shaped(caption=leaf),
                 context=shaped(id=leaf), **{"from": leaf})  # fmt: skip
whatsapp = shaped(entry=some(shaped(changes=some(shaped(
    value=shaped(statuses=some(status), messages=some(message)))))))  # fmt: skip
aliyun = some(shaped(biz_id=leaf, success=leaf, err_code=leaf, err_msg=leaf, phone_number=leaf,
                     content=leaf, sequence_id=leaf))  # fmt: skip
xml = st.dictionaries(
    st.sampled_from(["MsgType", "Event", "MsgID", "MsgId", "Status", "FromUserName", "Content"]),
    st.sampled_from(["event", "TEMPLATESENDJOBFINISH", "text", "success", "oAbc", "1"])
    | st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=8),
).map(lambda d: ("<xml>" + "".join(f"<{k}><![CDATA[{v.replace(']]>', '')}]]></{k}>"
                                  for k, v in d.items()) + "</xml>").encode())  # fmt: skip
form = st.dictionaries(
    st.sampled_from(["MessageSid", "MessageStatus", "ErrorCode", "From", "Body", "SmsSid"]),
    st.text(max_size=8),
).map(lambda d: httpx.QueryParams(d).__str__().encode())
payloads = (st.binary(max_size=120) | (whatsapp | aliyun).map(lambda v: json.dumps(v).encode())
            | xml | form)  # fmt: skip


def _outcome(parse: Any, raw: bytes) -> None:
    try:
        got = parse(raw)
    except ChannelError:
        return
    assert isinstance(got, DeliveryReceipt | InboundMessage)
    assert isinstance(got.provider_id, str) and got.provider_id


@pytest.mark.parametrize("channel", CHANNELS, ids=[c["type"] for c in CONFIGS])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=payloads)
def test_webhook_parsing_never_crashes(channel: Channel, raw: bytes) -> None:
    _outcome(channel.parse_receipt, raw)
    _outcome(channel.parse_inbound, raw)


@pytest.fixture(scope="module", params=HTTP_TYPES)
def answering(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[prov.Setup, Channel]]:
    """A provider server whose answers the test sets, and the adapter talking to it."""
    provider = prov.setup(str(request.param), tmp_path_factory.mktemp("keys"))
    channel = build_channel(parse_config(provider.raw))
    yield provider, channel
    provider.server.close()


answers = st.tuples(
    st.sampled_from([200, 201, 400, 401, 403, 404, 410, 429, 500, 503]),
    anything | shaped(error=shaped(code=leaf, message=leaf, details=some(shaped(errorCode=leaf))),
                      code=leaf, sid=leaf, messages=some(shaped(id=leaf)), errcode=leaf,
                      msgid=leaf, access_token=leaf, expires_in=leaf, name=leaf, reason=leaf,
                      Code=leaf, BizId=leaf),
    st.sampled_from([{}, {"Retry-After": "5"}, {"Retry-After": "nan"}, {"Location": "x"}]),
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(answer=answers)
def test_any_provider_answer_is_an_id_or_a_typed_error(
    answering: tuple[prov.Setup, Channel], answer: tuple[int, Any, dict[str, str]]
) -> None:
    provider, channel = answering
    status, body, headers = answer
    provider.server.override = prov.Reply(status, body, headers)
    # the caches of tokens (WeChat, FCM) would hide the token endpoint's answers: start afresh
    for attr in ("_token",):
        if hasattr(channel, attr):
            setattr(channel, attr, None)
    message = OutboundMessage(message_id=1, address=provider.address(), body="x",
                              headers=provider.headers)  # fmt: skip
    try:
        got = channel.send(message)
    except ChannelError as exc:
        wait = getattr(exc, "retry_after_s", 0.0)
        assert math.isfinite(wait) and wait >= 0
        return
    finally:
        provider.server.override = None
    assert isinstance(got, str) and got


@settings(max_examples=150, deadline=None)
@given(header=st.text(max_size=40))
def test_retry_after_is_always_finite_and_bounded(header: str) -> None:
    try:
        response = httpx.Response(429, headers={"Retry-After": header})
    except (UnicodeEncodeError, ValueError):
        return  # not a header value httpx can carry
    wait = retry_after(response, 60.0)
    assert math.isfinite(wait) and 0.0 <= wait <= MAX_RETRY_AFTER_S
