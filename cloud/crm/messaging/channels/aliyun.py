"""SMS through Alibaba Cloud SMS (Dysmsapi 2017-05-25, the RPC style API): SendSms signed with
HMAC-SHA1 over the sorted, percent-encoded parameters; its `Code` strings
(isv.MOBILE_NUMBER_ILLEGAL, isv.BUSINESS_LIMIT_CONTROL, isv.SMS_TEMPLATE_ILLEGAL, ...); the
SmsReport push as receipts and the SmsUp push as inbound messages.

Mainland China requires an approved signature (SignName) and template (TemplateCode): the template
code comes from the message header `aliyun-template` (else the config's `template_code`) and its
variables from `aliyun-params` (a JSON object); without them the body is passed as `content`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

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
    e164,
    json_object,
)

AUTH_HINT = "check access_key_id and access_key_secret (and the RAM user's SMS permission)"
INVALID_NUMBER = {
    "isv.MOBILE_NUMBER_ILLEGAL",
    "isv.MOBILE_COUNT_OVER_LIMIT",
    "isv.BLACK_KEY_CONTROL_LIMIT",
}
RATE_LIMITED = {
    "isv.BUSINESS_LIMIT_CONTROL",
    "Throttling.User",
    "Throttling",
    "isv.DAY_LIMIT_CONTROL",
}
TEMPLATE_ERRORS = {
    "isv.SMS_TEMPLATE_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS", "isv.SMS_SIGNATURE_ILLEGAL",
    "isv.TEMPLATE_PARAMS_ILLEGAL", "isv.SMS_SIGN_ILLEGAL",
}  # fmt: skip
AUTH_ERRORS = {"InvalidAccessKeyId.NotFound", "SignatureDoesNotMatch", "isv.ACCOUNT_NOT_EXISTS",
               "isv.ACCOUNT_ABNORMAL", "Forbidden.RAM", "isp.RAM_PERMISSION_DENY"}  # fmt: skip
TRANSIENT = {"isp.SYSTEM_ERROR", "ServiceUnavailable", "InternalError", "isp.GATEWAY_ERROR"}
#: Report error codes that mean the number is dead (others are soft failures).
HARD_FAILURES = {"MK:0001", "IC:0001", "EMPTY_NUMBER", "IS:0001", "MN:0001", "UNDELIV"}


def percent(text: str) -> str:
    """Alibaba Cloud's percent-encoding: RFC 3986 unreserved characters kept, space as %20."""
    return quote(text, safe="-_.~")


def signature(params: dict[str, str], secret: str, method: str = "POST") -> str:
    """The RPC signature: HMAC-SHA1(secret + '&', METHOD&%2F&encoded sorted query), base64."""
    query = "&".join(f"{percent(k)}={percent(params[k])}" for k in sorted(params))
    to_sign = f"{method}&{percent('/')}&{percent(query)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class AliyunSmsConfig(HttpChannelConfig):
    """An Alibaba Cloud SMS account, its approved signature and default template."""

    type: Literal["aliyun_sms"] = "aliyun_sms"
    base_url: str = Field(default="https://dysmsapi.aliyuncs.com", description="API endpoint.")
    access_key_id: str = Field(min_length=4, max_length=64, description="AccessKey ID.")
    access_key_secret: SecretStr = Field(description="AccessKey secret.")
    sign_name: str = Field(min_length=1, max_length=40, description="Approved SMS signature.")
    template_code: str | None = Field(
        default=None, description="Default approved template (SMS_...) when a message names none."
    )


class AliyunSmsChannel:
    """Sends SMS; the BizId is the provider id."""

    name = "sms"
    idempotent = False  # SendSms has OutId for correlation but no deduplication

    def __init__(self, config: AliyunSmsConfig) -> None:
        self.config = config
        self.http = HttpTransport(config)

    def params(self, message: OutboundMessage) -> dict[str, str]:
        """The signed SendSms parameters for this message."""
        cfg = self.config
        number = e164(message.address)
        phone = number[3:] if number.startswith("+86") else number.lstrip("+")
        template = message.headers.get("aliyun-template") or cfg.template_code
        if not template:
            raise TemplateNotApprovedError("Aliyun SMS needs an approved template (TemplateCode)")
        variables = _variables(message)
        params = {
            "Action": "SendSms", "Version": "2017-05-25", "Format": "JSON",
            "AccessKeyId": cfg.access_key_id, "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0", "SignatureNonce": secrets.token_hex(16),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "PhoneNumbers": phone, "SignName": cfg.sign_name, "TemplateCode": template,
            "TemplateParam": json.dumps(variables, ensure_ascii=False),
            "OutId": str(message.message_id),
        }  # fmt: skip
        params["Signature"] = signature(params, cfg.access_key_secret.get_secret_value())
        return params

    def send(self, message: OutboundMessage) -> str:
        """POST SendSms; the BizId, or a typed error."""
        response = self.http.request("POST", self.config.base_url, data=self.params(message))
        body = json_object(response) or {}
        if response.status_code == 200 and body.get("Code") == "OK" and body.get("BizId"):
            return str(body["BizId"])
        raise _error(response, body)

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def parse_receipt(self, raw: bytes) -> DeliveryReceipt:
        """The first report of an SmsReport push (a JSON array)."""
        item = _first(raw, "biz_id")
        code = str(item.get("err_code", ""))
        if item.get("success") is True:
            return DeliveryReceipt(str(item["biz_id"]), ReceiptStatus.DELIVERED, detail=code)
        hard = code in HARD_FAILURES
        status = ReceiptStatus.HARD_BOUNCE if hard else ReceiptStatus.SOFT_BOUNCE
        return DeliveryReceipt(
            str(item["biz_id"]), status, detail=f"{code} {item.get('err_msg', '')}"
        )

    def parse_inbound(self, raw: bytes) -> InboundMessage:
        """The first message of an SmsUp push; `sequence_id` is its id."""
        item = _first(raw, "sequence_id")
        phone = str(item.get("phone_number", ""))
        if not phone or "content" not in item:
            raise PermanentChannelError("not an Aliyun SmsUp message: no phone_number/content")
        address = phone if phone.startswith("+") else f"+86{phone}"
        return InboundMessage(address=address, body=str(item["content"]),
                              provider_id=str(item["sequence_id"]))  # fmt: skip


def _variables(message: OutboundMessage) -> dict[str, str]:
    raw = message.headers.get("aliyun-params")
    if raw is None:
        if not message.body:
            raise PermanentChannelError("an SMS needs a body or aliyun-params")
        return {"content": message.body}
    try:
        variables = json.loads(raw)
    except ValueError as exc:
        raise PermanentChannelError("aliyun-params must be a JSON object") from exc
    if not isinstance(variables, dict):
        raise PermanentChannelError("aliyun-params must be a JSON object")
    return {str(k): str(v) for k, v in variables.items()}


def _first(raw: bytes, key: str) -> dict[str, Any]:
    try:
        items = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PermanentChannelError("not an Aliyun SMS push: not JSON") from exc
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise PermanentChannelError("not an Aliyun SMS push: not a JSON array of objects")
    if items[0].get(key) in (None, ""):
        raise PermanentChannelError(f"not an Aliyun SMS push: no {key}")
    first: dict[str, Any] = items[0]
    return first


def _error(response: httpx.Response, body: dict[str, Any]) -> ChannelError:
    code = str(body.get("Code", ""))
    detail = f"aliyun_sms {code}: {body.get('Message', '')} (RequestId {body.get('RequestId')})"
    if not code:
        return by_status(response, "aliyun_sms", "", AUTH_HINT)
    if code in INVALID_NUMBER:
        return InvalidAddressError(detail)
    if code in RATE_LIMITED:
        return RateLimitedError(detail, retry_after_s=60.0 if "DAY" not in code else 3600.0)
    if code in TEMPLATE_ERRORS:
        return TemplateNotApprovedError(detail)
    if code in AUTH_ERRORS:
        return PermanentChannelError(f"{detail}; {AUTH_HINT}")
    if code in TRANSIENT or response.status_code >= 500:
        return TransientChannelError(detail)
    return PermanentChannelError(detail)


@register("aliyun_sms", AliyunSmsConfig)
def _aliyun(config: AliyunSmsConfig, _context: Any) -> AliyunSmsChannel:
    return AliyunSmsChannel(config)
