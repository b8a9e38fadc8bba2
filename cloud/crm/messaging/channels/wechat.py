"""WeChat Official Account: template messages (POST /cgi-bin/message/template/send) and
customer-service messages (POST /cgi-bin/message/custom/send), with the access_token fetched from
/cgi-bin/token, cached and refreshed on errcode 40001/42001/40014; errcode translation; inbound
XML messages as inbound and the TEMPLATESENDJOBFINISH event as the receipt.

The address is the follower's openid. A template message is asked for with the OutboundMessage
headers `wechat-template-id`, `wechat-data` (a JSON object, key -> value) and optionally
`wechat-url`; without them the body goes out as a customer-service text message, which WeChat
accepts only within 48 hours of the follower's last interaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import xml.etree.ElementTree as ET
from typing import Any, Literal

import httpx
from pydantic import Field, SecretStr

from cloud.crm.messaging.channels.base import (
    ChannelError,
    DeliveryReceipt,
    InboundMessage,
    InvalidAddressError,
    OutboundMessage,
    PermanentChannelError,
    RateLimitedError,
    ReceiptStatus,
    TemplateNotApprovedError,
    TransientChannelError,
    register,
)
from cloud.crm.messaging.channels.http import (
    HttpChannelConfig,
    HttpTransport,
    by_status,
    json_object,
    log,
)

AUTH_HINT = "check app_id/app_secret and that this server's IP is on the account's whitelist"
TOKEN_EXPIRED = {40001, 42001, 40014}
INVALID_RECIPIENT = {40003, 43004, 43019}  # invalid openid, not a follower, blocked us
TEMPLATE_ERRORS = {40037, 47003}  # unknown template_id, template data does not match
RATE_LIMITED = {45009, 45047, 45011}
AUTH_ERRORS = {40013, 40125, 40164, 41004, 40002}
OPENID = re.compile(r"^[A-Za-z0-9_-]{6,64}$")
#: The token is refreshed this long before WeChat says it expires.
TOKEN_MARGIN_S = 300.0


class WeChatConfig(HttpChannelConfig):
    """An Official Account (service account) and its webhook token."""

    type: Literal["wechat"] = "wechat"
    base_url: str = Field(default="https://api.weixin.qq.com", description="API base URL.")
    app_id: str = Field(min_length=2, max_length=64, description="The account's AppID (wx...).")
    app_secret: SecretStr = Field(description="The account's AppSecret.")
    webhook_token: SecretStr | None = Field(
        default=None, description="Token configured for the server URL (signs webhooks)."
    )
    rate_limit_retry_s: float = Field(
        default=3600.0, gt=0, le=86400, description="Wait after errcode 45009 (daily quota)."
    )


class WeChatChannel:
    """Sends template or customer-service messages; the msgid is the provider id."""

    name = "wechat"
    idempotent = False

    def __init__(self, config: WeChatConfig) -> None:
        self.config = config
        self.http = HttpTransport(config)
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()

    def access_token(self, *, refresh: bool = False) -> str:
        """The cached access_token, fetched again when it is (nearly) expired or `refresh`."""
        with self._token_lock:
            now = time.monotonic()
            if self._token is not None and not refresh and self._token[1] > now:
                return self._token[0]
            cfg = self.config
            response = self.http.request(
                "GET",
                f"{cfg.base_url.rstrip('/')}/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": cfg.app_id,
                    "secret": cfg.app_secret.get_secret_value(),
                },
            )
            body = json_object(response) or {}
            token, ttl = body.get("access_token"), body.get("expires_in", 7200)
            if not isinstance(token, str) or not isinstance(ttl, int):
                raise _error(body, response, self.config, during="token")
            self._token = (token, now + max(ttl - TOKEN_MARGIN_S, 30.0))
            log.info(
                "wechat access_token fetched",
                extra={"provider": self.config.type, "refresh": refresh},
            )
            return token

    def payload(self, message: OutboundMessage) -> tuple[str, dict[str, Any]]:
        """(path, JSON body) for this message: a template or a customer-service text."""
        if not OPENID.match(message.address or ""):
            raise InvalidAddressError(f"not a WeChat openid: {message.address!r}")
        template = message.headers.get("wechat-template-id")
        if not template:
            if not message.body:
                raise PermanentChannelError("a WeChat text message needs a body")
            return "/cgi-bin/message/custom/send", {
                "touser": message.address,
                "msgtype": "text",
                "text": {"content": message.body},
            }
        try:
            data = json.loads(message.headers.get("wechat-data", "{}"))
        except ValueError as exc:
            raise PermanentChannelError("wechat-data must be a JSON object") from exc
        if not isinstance(data, dict):
            raise PermanentChannelError("wechat-data must be a JSON object")
        body: dict[str, Any] = {
            "touser": message.address,
            "template_id": template,
            "data": {str(k): {"value": str(v)} for k, v in data.items()},
            "client_msg_id": f"mp-{message.message_id}",
        }
        if message.headers.get("wechat-url"):
            body["url"] = message.headers["wechat-url"]
        return "/cgi-bin/message/template/send", body

    def send(self, message: OutboundMessage) -> str:
        """Send; `msgid` for a template, `wechat-cs-<outbox id>` for a customer-service message
        (that API returns no id)."""
        path, body = self.payload(message)
        refreshed = False
        while True:
            response = self.http.request(
                "POST",
                f"{self.config.base_url.rstrip('/')}{path}",
                params={"access_token": self.access_token(refresh=refreshed)},
                content=json.dumps(body, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            answer = json_object(response) or {}
            code = _errcode(answer)
            if code == 0 and response.status_code == 200:
                msgid = answer.get("msgid")
                return str(msgid) if msgid is not None else f"wechat-cs-{message.message_id}"
            if code in TOKEN_EXPIRED and not refreshed:
                refreshed = True
                continue
            raise _error(answer, response, self.config, during="send")

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """A TEMPLATESENDJOBFINISH event: success, failed:user block, failed: system failed."""
        xml = _xml(raw)
        if xml.get("MsgType") != "event" or xml.get("Event") != "TEMPLATESENDJOBFINISH":
            raise PermanentChannelError("not a TEMPLATESENDJOBFINISH event")
        msgid, status = xml.get("MsgID") or xml.get("MsgId"), xml.get("Status", "")
        if not msgid:
            raise PermanentChannelError("TEMPLATESENDJOBFINISH without MsgID")
        if status == "success":
            return DeliveryReceipt(msgid, ReceiptStatus.DELIVERED, detail=status)
        if "block" in status:
            return DeliveryReceipt(msgid, ReceiptStatus.HARD_BOUNCE, detail=status)
        return DeliveryReceipt(msgid, ReceiptStatus.SOFT_BOUNCE, detail=status)

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """A follower's message (text; other types as `[type]` with their media id)."""
        xml = _xml(raw)
        kind, sender, msgid = xml.get("MsgType"), xml.get("FromUserName"), xml.get("MsgId")
        if not kind or kind == "event" or not sender or not msgid:
            raise PermanentChannelError("not a WeChat user message")
        body = xml.get("Content") if kind == "text" else f"[{kind}] {xml.get('MediaId', '')}"
        return InboundMessage(address=sender, body=(body or "").strip(), provider_id=msgid)


def _error(
    body: dict[str, Any], response: httpx.Response, config: WeChatConfig, *, during: str
) -> ChannelError:
    code = _errcode(body)
    detail = f"wechat {during} errcode {code}: {body.get('errmsg', '')}"
    if code is None:
        if response.status_code == 200:
            return TransientChannelError(f"wechat {during}: unexpected answer {body!r:.200}")
        return by_status(response, "wechat", detail, AUTH_HINT)
    if code in INVALID_RECIPIENT:
        return InvalidAddressError(detail)
    if code in TEMPLATE_ERRORS:
        return TemplateNotApprovedError(detail)
    if code in RATE_LIMITED:
        return RateLimitedError(detail, retry_after_s=config.rate_limit_retry_s)
    if code in AUTH_ERRORS or code in TOKEN_EXPIRED:
        return PermanentChannelError(f"{detail}; {AUTH_HINT}")
    if code == -1:
        return TransientChannelError(detail)
    return PermanentChannelError(detail)


def _errcode(body: dict[str, Any]) -> int | None:
    code = body.get("errcode")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _xml(raw: bytes) -> dict[str, str]:
    # WeChat never sends a DTD; refusing one rules out entity expansion attacks.
    if b"<!DOCTYPE" in raw.upper() or b"<!ENTITY" in raw.upper():
        raise PermanentChannelError("not a WeChat message: DTDs are not accepted")
    try:
        root = ET.fromstring(raw)  # noqa: S314 (DTDs refused above; expat expands no external entity)
    except ET.ParseError as exc:
        raise PermanentChannelError(f"not a WeChat message: {exc}") from exc
    if root.tag != "xml":
        raise PermanentChannelError("not a WeChat message: root is not <xml>")
    return {child.tag: (child.text or "") for child in root}


def webhook_signature(token: str, timestamp: str, nonce: str) -> str:
    """The `signature` query parameter WeChat adds: SHA-1 of the sorted token, timestamp, nonce."""
    joined = "".join(sorted([token, timestamp, nonce])).encode()
    return hashlib.sha1(joined, usedforsecurity=False).hexdigest()  # WeChat's scheme, not ours


def verify_signature(token: str, timestamp: str, nonce: str, signature: str) -> bool:
    """Whether a webhook's `signature` is valid for the configured token."""
    return hmac.compare_digest(webhook_signature(token, timestamp, nonce), signature)


@register("wechat", WeChatConfig)
def _wechat(config: WeChatConfig, _context: Any) -> WeChatChannel:
    return WeChatChannel(config)
