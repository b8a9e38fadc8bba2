"""Local provider servers for tests: one threaded HTTP server per provider that checks requests the
way the provider does (credentials, shapes, approved templates, tokens, VAPID) and answers with the
provider's success and error shapes. `mode` switches the next answers to a failure: 'rate_limited',
'invalid_number', 'template_not_approved', 'server_error', 'unregistered', 'token_expired'."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.crm.messaging.channels import jwt

E164_DIGITS = 15


@dataclass
class Reply:
    """What the provider answers: status, JSON (or raw) body, headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    """One request the provider accepted, and the id it gave."""

    path: str
    headers: dict[str, str]
    body: bytes
    provider_id: str
    parsed: Any = None


class ProviderServer:
    """The common server: routing to `handle`, the failure switch, what was accepted."""

    def __init__(self) -> None:
        self.mode: str | None = None
        #: When set, every request gets this answer (for fuzzing the adapters' answer parsing).
        self.override: Reply | None = None
        self.accepted: list[Received] = []
        self.requests = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server.lock:
                    server.requests += 1
                reply = server.override or server.handle(self.command, self.path, headers, body)
                raw = (
                    reply.body
                    if isinstance(reply.body, bytes)
                    else json.dumps(reply.body).encode()
                    if reply.body is not None
                    else b""
                )
                # the client may have given up waiting (a timeout test)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._write(reply, raw)

            def _write(self, reply: Reply, raw: bytes) -> None:
                self.send_response(reply.status)
                if reply.body is not None and not isinstance(reply.body, bytes):
                    self.send_header("Content-Type", "application/json")
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = _any  # noqa: N815

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        """Answer one request (the provider's rules)."""
        raise NotImplementedError

    def accept(self, path: str, headers: dict[str, str], body: bytes, pid: str, parsed: Any) -> str:
        """Record an accepted message; its provider id."""
        with self.lock:
            self.accepted.append(Received(path, headers, body, pid, parsed))
        return pid

    def got(self, provider_id: str) -> bool:
        """Whether a message with this provider id was accepted."""
        with self.lock:
            return any(r.provider_id == provider_id for r in self.accepted)

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


# --- Twilio ------------------------------------------------------------------------------------


class TwilioServer(ProviderServer):
    """POST /2010-04-01/Accounts/{sid}/Messages.json, form-encoded, HTTP Basic."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "tw-token") -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.released = threading.Event()
        super().__init__()

    def close(self) -> None:
        """Release hung answers, then stop."""
        self.released.set()
        super().close()

    @staticmethod
    def _err(status: int, code: int, message: str, **headers: str) -> Reply:
        body = {"code": code, "message": message, "status": status,
                "more_info": f"https://www.twilio.com/docs/errors/{code}"}  # fmt: skip
        return Reply(status, body, headers)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if method != "POST" or path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return self._err(404, 20404, "The requested resource was not found")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("authorization") != f"Basic {expected}":
            return self._err(401, 20003, "Authenticate")
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._err(400, 21609, "Content-Type must be form-encoded")
        form = dict(parse_qsl(body.decode()))
        to = form.get("To", "")
        if not form.get("Body"):
            return self._err(400, 21602, "Message body is required.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._err(400, 21603, "A 'From' or 'MessagingServiceSid' is required.")
        digits = to.lstrip("+")
        if self.mode == "invalid_number" or not to.startswith("+") or not digits.isdigit():
            return self._err(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if self.mode == "rate_limited":
            return self._err(429, 20429, "Too Many Requests", **{"Retry-After": "7"})
        if self.mode == "server_error":
            return Reply(500, b"Internal Server Error")
        sid = "SM" + secrets.token_hex(16)
        self.accept(path, headers, body, sid, form)
        if self.mode == "accept_then_hang":  # accepted, but the answer never reaches the client
            self.released.wait(30)
        return Reply(201, {"sid": sid, "status": "queued", "to": to, "body": form["Body"],
                           "account_sid": self.account_sid, "error_code": None})  # fmt: skip


# --- Alibaba Cloud SMS (Dysmsapi RPC) -----------------------------------------------------------


class AliyunSmsServer(ProviderServer):
    """POST / with Action=SendSms, the RPC signature checked against the AccessKey secret."""

    def __init__(self, key_id: str = "LTAI5tTestKeyId", secret: str = "ali-secret",
                 sign_name: str = "MallPulse", templates: frozenset[str] = frozenset({"SMS_1001"})
                 ) -> None:  # fmt: skip
        self.key_id, self.secret, self.sign_name, self.templates = (
            key_id,
            secret,
            sign_name,
            templates,
        )
        self.nonces: set[str] = set()
        super().__init__()

    @staticmethod
    def _err(code: str, message: str, status: int = 200) -> Reply:
        return Reply(status, {"Code": code, "Message": message, "RequestId": secrets.token_hex(8)})

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        from cloud.crm.messaging.channels.aliyun import signature

        params = dict(parse_qsl(body.decode()))
        given = params.pop("Signature", "")
        if params.get("AccessKeyId") != self.key_id:
            return self._err(
                "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404
            )
        if signature(params, self.secret, method) != given:
            return self._err("SignatureDoesNotMatch", "Specified signature is not matched.", 400)
        if params.get("SignatureNonce") in self.nonces:
            return self._err(
                "SignatureNonceUsed", "Specified signature nonce was used already.", 400
            )
        self.nonces.add(params.get("SignatureNonce", ""))
        if params.get("Action") != "SendSms" or params.get("Version") != "2017-05-25":
            return self._err("InvalidAction.NotFound", "Specified api is not found.", 404)
        phone = params.get("PhoneNumbers", "")
        if self.mode == "invalid_number" or not phone.isdigit():
            return self._err("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if params.get("SignName") != self.sign_name:
            return self._err("isv.SMS_SIGNATURE_ILLEGAL", "签名不合法")
        if self.mode == "template_not_approved" or params.get("TemplateCode") not in self.templates:
            return self._err("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            assert isinstance(json.loads(params.get("TemplateParam", "{}")), dict)
        except (ValueError, AssertionError):
            return self._err("isv.INVALID_JSON_PARAM", "JSON参数不合法")
        if self.mode == "rate_limited":
            return self._err("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
        if self.mode == "server_error":
            return self._err("isp.SYSTEM_ERROR", "系统错误", 500)
        biz_id = f"{secrets.randbelow(10**15)}^{secrets.randbelow(10**10)}"
        self.accept(path, headers, body, biz_id, params)
        return Reply(200, {"Code": "OK", "Message": "OK", "BizId": biz_id,
                           "RequestId": secrets.token_hex(8)})  # fmt: skip


# --- WhatsApp Cloud API ------------------------------------------------------------------------


class WhatsAppServer(ProviderServer):
    """POST /{version}/{phone-number-id}/messages with a bearer token."""

    def __init__(
        self, phone_number_id: str = "106540352242922", token: str = "wa-token",
        approved: frozenset[str] = frozenset({"order_ready", "hello_world"}),
    ) -> None:  # fmt: skip
        self.phone_number_id, self.token, self.approved = phone_number_id, token, approved
        super().__init__()

    @staticmethod
    def _err(status: int, code: int, message: str, details: str = "", **headers: str) -> Reply:
        error = {"message": message, "type": "OAuthException", "code": code,
                 "error_data": {"messaging_product": "whatsapp", "details": details},
                 "fbtrace_id": secrets.token_hex(8)}  # fmt: skip
        return Reply(status, {"error": error}, headers)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = path.strip("/").split("/")
        if method != "POST" or len(parts) != 3 or parts[1:] != [self.phone_number_id, "messages"]:
            return self._err(400, 100, "Unsupported post request.")
        if headers.get("authorization") != f"Bearer {self.token}":
            return self._err(401, 190, "Invalid OAuth access token - Cannot parse access token")
        try:
            msg = json.loads(body)
        except ValueError:
            return self._err(400, 100, "Invalid parameter", "body is not JSON")
        to = str(msg.get("to", ""))
        if msg.get("messaging_product") != "whatsapp" or not to.isdigit():
            return self._err(400, 100, "Invalid parameter", "messaging_product/to")
        kind = msg.get("type")
        if kind == "text" and not (msg.get("text") or {}).get("body"):
            return self._err(400, 100, "Invalid parameter", "text.body is required")
        if kind == "template":
            template = msg.get("template") or {}
            if not template.get("name") or not (template.get("language") or {}).get("code"):
                return self._err(400, 100, "Invalid parameter", "template name/language")
            if self.mode == "template_not_approved" or template["name"] not in self.approved:
                return self._err(404, 132001, "Template name does not exist in the translation",
                                 f"template name ({template['name']}) does not exist")  # fmt: skip
        elif kind != "text":
            return self._err(400, 100, "Invalid parameter", f"type {kind!r}")
        if self.mode == "invalid_number":
            return self._err(400, 131026, "Message Undeliverable.")
        if self.mode == "rate_limited":
            return self._err(429, 130429, "Rate limit hit", **{"Retry-After": "5"})
        if self.mode == "server_error":
            return self._err(500, 131000, "Something went wrong")
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(24)).decode()
        self.accept(path, headers, body, wamid, msg)
        return Reply(200, {"messaging_product": "whatsapp",
                           "contacts": [{"input": to, "wa_id": to}],
                           "messages": [{"id": wamid}]})  # fmt: skip


# --- WeChat Official Account -------------------------------------------------------------------


class WeChatServer(ProviderServer):
    """/cgi-bin/token, /cgi-bin/message/template/send, /cgi-bin/message/custom/send."""

    def __init__(
        self, app_id: str = "wx0123456789abcdef", app_secret: str = "wc-secret",
        templates: frozenset[str] = frozenset({"tmpl-points-earned"}),
    ) -> None:  # fmt: skip
        self.app_id, self.app_secret, self.templates = app_id, app_secret, templates
        self.tokens: set[str] = set()
        self.token_requests = 0
        self._msgid = 200_000_000
        super().__init__()

    @staticmethod
    def _err(code: int, message: str) -> Reply:
        return Reply(200, {"errcode": code, "errmsg": f"{message} rid: {secrets.token_hex(6)}"})

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        url = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/cgi-bin/token":
            self.token_requests += 1
            if query.get("appid") != self.app_id:
                return self._err(40013, "invalid appid")
            if (
                query.get("secret") != self.app_secret
                or query.get("grant_type") != "client_credential"
            ):
                return self._err(40125, "invalid appsecret")  # fmt: skip
            token = secrets.token_urlsafe(48)
            self.tokens.add(token)
            return Reply(200, {"access_token": token, "expires_in": 7200})
        if url.path not in ("/cgi-bin/message/template/send", "/cgi-bin/message/custom/send"):
            return Reply(404, b"not found")
        if self.mode == "token_expired":
            self.tokens.clear()
            self.mode = None
        if query.get("access_token") not in self.tokens:
            return self._err(40001, "invalid credential, access_token is invalid or not latest")
        try:
            msg = json.loads(body)
        except ValueError:
            return self._err(47001, "data format error")
        if self.mode == "server_error":
            return Reply(500, b"<html>502 Bad Gateway</html>")
        if self.mode == "invalid_number" or not str(msg.get("touser", "")).startswith("o"):
            return self._err(40003, "invalid openid")
        if self.mode == "not_subscribed":
            return self._err(43004, "require subscribe")
        if self.mode == "rate_limited":
            return self._err(45009, "reach max api daily quota limit")
        if url.path.endswith("template/send"):
            if self.mode == "template_not_approved" or msg.get("template_id") not in self.templates:
                return self._err(40037, "invalid template_id")
            if not isinstance(msg.get("data"), dict):
                return self._err(47001, "data format error")
            self._msgid += 1
            pid = str(self._msgid)
            self.accept(url.path, headers, body, pid, msg)
            return Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": self._msgid})
        if msg.get("msgtype") != "text" or not (msg.get("text") or {}).get("content"):
            return self._err(47001, "data format error")
        self.accept(url.path, headers, body, f"custom-{len(self.accepted)}", msg)
        return Reply(200, {"errcode": 0, "errmsg": "ok"})


# --- FCM HTTP v1 and its OAuth2 token endpoint -------------------------------------------------


def service_account(token_uri: str) -> tuple[dict[str, str], Any]:
    """A service-account key file's JSON (a fresh RSA key) and the key's public half."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {"type": "service_account", "project_id": "mallpulse-test",
               "private_key_id": secrets.token_hex(20), "private_key": pem,
               "client_email": "fcm-sender@mallpulse-test.iam.gserviceaccount.com",
               "token_uri": token_uri}  # fmt: skip
    return account, key.public_key()


class FcmServer(ProviderServer):
    """POST /token (JWT bearer grant) and POST /v1/projects/{p}/messages:send."""

    def __init__(self, project_id: str = "mallpulse-test") -> None:
        self.project_id = project_id
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.public_key: Any = None
        self.client_email = ""
        super().__init__()

    def account(self) -> dict[str, str]:
        """A service account this server trusts (its token_uri points here)."""
        account, public = service_account(self.url + "/token")
        self.public_key, self.client_email = public, account["client_email"]
        return account

    @staticmethod
    def _err(status: int, state: str, message: str, code: str | None = None, **hdr: str) -> Reply:
        error: dict[str, Any] = {"code": status, "message": message, "status": state}
        if code:
            error["details"] = [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                 "errorCode": code}]  # fmt: skip
        return Reply(status, {"error": error}, hdr)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if path == "/token":
            return self._token(body)
        if method != "POST" or path != f"/v1/projects/{self.project_id}/messages:send":
            return self._err(404, "NOT_FOUND", "Requested entity was not found.")
        bearer = headers.get("authorization", "").removeprefix("Bearer ")
        if self.mode == "token_expired":
            self.tokens.clear()
            self.mode = None
        if bearer not in self.tokens:
            return self._err(401, "UNAUTHENTICATED", "Request had invalid credentials.")
        try:
            message = json.loads(body)["message"]
            token = message["token"]
        except (ValueError, KeyError, TypeError):
            return self._err(400, "INVALID_ARGUMENT", "Invalid JSON payload.", "INVALID_ARGUMENT")
        if self.mode in ("invalid_number", "unregistered"):
            return self._err(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        if self.mode == "rate_limited":
            return self._err(429, "RESOURCE_EXHAUSTED", "Quota exceeded.", "QUOTA_EXCEEDED",
                             **{"Retry-After": "11"})  # fmt: skip
        if self.mode == "server_error":
            return self._err(500, "INTERNAL", "Internal error encountered.", "INTERNAL")
        name = f"projects/{self.project_id}/messages/0:{secrets.randbelow(10**16)}%{token[:8]}"
        self.accept(path, headers, body, name, message)
        return Reply(200, {"name": name})

    def _token(self, body: bytes) -> Reply:
        self.token_requests += 1
        form = dict(parse_qsl(body.decode()))
        claims = jwt.verify(form.get("assertion", ""), self.public_key)
        ok = (
            form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer"
            and claims is not None
            and claims.get("aud") == self.url + "/token"
            and claims.get("iss") == self.client_email
            and "firebase.messaging" in str(claims.get("scope"))
        )
        if not ok:
            refusal = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            return Reply(400, refusal)
        token = "ya29." + secrets.token_urlsafe(32)
        self.tokens.add(token)
        return Reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})


# --- APNs (HTTP/1.1 here: see channels/apns.py) ------------------------------------------------


class ApnsServer(ProviderServer):
    """POST /3/device/{token} with an ES256 provider token for a team and a key."""

    def __init__(self, team_id: str = "TEAM123456", key_id: str = "KEY1234567",
                 topic: str = "com.mallpulse.app") -> None:  # fmt: skip
        self.team_id, self.key_id, self.topic = team_id, key_id, topic
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.rejected_tokens: set[str] = set()
        super().__init__()

    def p8(self) -> bytes:
        """The .p8 file Apple would let the team download (PKCS#8 PEM)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        def err(status: int, reason: str, **hdr: str) -> Reply:
            return Reply(status, {"reason": reason}, {"apns-id": headers.get("apns-id", "")} | hdr)

        if method != "POST" or not path.startswith("/3/device/"):
            return err(404, "BadPath")
        token = headers.get("authorization", "").removeprefix("bearer ")
        if self.mode == "token_expired":
            self.rejected_tokens.add(token)
            self.mode = None
        if token in self.rejected_tokens:
            return err(403, "ExpiredProviderToken")
        claims = jwt.verify(token, self.key.public_key())
        head = json.loads(jwt.unb64url(token.split(".")[0])) if claims else {}
        if claims is None or claims.get("iss") != self.team_id or head.get("kid") != self.key_id:
            return err(403, "InvalidProviderToken")
        if headers.get("apns-topic") != self.topic:
            return err(
                400, "DeviceTokenNotForTopic" if headers.get("apns-topic") else "MissingTopic"
            )
        device = path.removeprefix("/3/device/")
        try:
            payload = json.loads(body)
            assert isinstance(payload.get("aps"), dict)
        except (ValueError, AssertionError):
            return err(400, "PayloadEmpty")
        if self.mode == "invalid_number" or len(device) != 64:
            return err(400, "BadDeviceToken")
        if self.mode == "unregistered":
            return Reply(410, {"reason": "Unregistered", "timestamp": 1733400000000})
        if self.mode == "rate_limited":
            return err(429, "TooManyRequests")
        if self.mode == "server_error":
            return err(500, "InternalServerError")
        apns_id = headers.get("apns-id") or str(secrets.token_hex(16))
        self.accept(path, headers, body, apns_id, payload)
        return Reply(200, None, {"apns-id": apns_id})


# --- a Web Push service (RFC 8030) that checks VAPID and decrypts with the subscriber's key ---


@dataclass
class Subscriber:
    """A subscription's private half (what the browser keeps)."""

    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str | None


class PushService(ProviderServer):
    """POST /push/{id}: VAPID (RFC 8292) verified, aes128gcm payload decrypted (RFC 8291) when this
    server made the subscription's keys; 410 once a subscription is deleted."""

    def __init__(self) -> None:
        self.subscribers: dict[str, Subscriber | None] = {}
        self.gone: set[str] = set()
        super().__init__()

    def subscribe(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A new subscription as PushSubscription.toJSON() gives it; keys kept to decrypt."""
        sid = secrets.token_urlsafe(12)
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        self.subscribers[sid] = Subscriber(key, auth, application_server_key)
        public = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": f"{self.url}/push/{sid}", "expirationTime": None,
                "keys": {"p256dh": jwt.b64url(public), "auth": jwt.b64url(auth)}}  # fmt: skip

    def endpoint_for_browser(self) -> str:
        """An endpoint whose keys the browser holds (the server keeps the ciphertext only)."""
        sid = secrets.token_urlsafe(12)
        self.subscribers[sid] = None
        return f"{self.url}/push/{sid}"

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        sid = path.removeprefix("/push/")
        if method != "POST" or sid not in self.subscribers:
            return Reply(404, b"no such subscription")
        if sid in self.gone or self.mode in ("unregistered", "invalid_number"):
            return Reply(410, b"push subscription has unsubscribed or expired")
        vapid = _vapid(headers.get("authorization", ""), self.url)
        if vapid is None:
            return Reply(401, b"invalid VAPID authorization")
        sub = self.subscribers[sid]
        if sub is not None and sub.application_server_key not in (None, vapid):
            return Reply(403, b"VAPID key does not match the subscription's")
        if headers.get("content-encoding") != "aes128gcm" or "ttl" not in headers:
            return Reply(400, b"Content-Encoding aes128gcm and TTL required")
        if len(body) > 4096:
            return Reply(413, b"payload too large")
        if self.mode == "rate_limited":
            return Reply(429, b"slow down", {"Retry-After": "3"})
        if self.mode == "server_error":
            return Reply(503, b"unavailable")
        plain: Any = body
        if sub is not None:
            try:
                plain = http_ece.decrypt(body, private_key=sub.private_key,
                                         auth_secret=sub.auth, version="aes128gcm")  # fmt: skip
            except Exception:
                return Reply(400, b"payload cannot be decrypted")
        location = f"{self.url}/message/{secrets.token_urlsafe(9)}"
        self.accept(path, headers, body, location, plain)
        return Reply(201, None, {"Location": location})


def _vapid(authorization: str, origin: str) -> str | None:
    """The VAPID public key (k) when `vapid t=<jwt>,k=<key>` is valid for this origin."""
    scheme, _, rest = authorization.partition(" ")
    if scheme.lower() != "vapid":
        return None
    parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(
            ec.SECP256R1(), jwt.unb64url(parts.get("k", ""))
        )
    except ValueError:
        return None
    claims = jwt.verify(parts.get("t", ""), public)
    if claims is None or claims.get("aud") != origin or not str(claims.get("sub", "")):
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int) or exp <= time.time() or exp > time.time() + 24 * 3600:
        return None  # RFC 8292: at most 24 hours ahead
    return parts["k"]


@contextmanager
def running(factory: Callable[[], ProviderServer]) -> Iterator[ProviderServer]:
    """A provider server for the duration of a block."""
    server = factory()
    try:
        yield server
    finally:
        server.close()


VAPID_PRIVATE = "Q0hG1DWGJ8tCTcOEpQY7yEF3B2bS9rw3mhX-a-3-7Qs"  # a fixed P-256 scalar, base64url


@dataclass
class Setup:
    """An HTTP adapter's raw config, its server and a valid address and headers for it."""

    raw: dict[str, Any]
    server: ProviderServer
    address: Callable[[], str]
    headers: dict[str, str]


def setup(kind: str, tmp_path: Path) -> Setup:
    """A started server for the adapter type, the adapter's config, an address and headers."""
    if kind == "twilio":
        tw = TwilioServer()
        raw = {"type": "twilio", "base_url": tw.url, "account_sid": tw.account_sid,
               "auth_token": tw.auth_token, "from_number": "+14155552671"}  # fmt: skip
        return Setup(raw, tw, lambda: "+49 151 2345 6789", {})
    if kind == "aliyun_sms":
        ali = AliyunSmsServer()
        raw = {"type": "aliyun_sms", "base_url": ali.url, "access_key_id": ali.key_id,
               "access_key_secret": ali.secret, "sign_name": ali.sign_name,
               "template_code": "SMS_1001"}  # fmt: skip
        return Setup(raw, ali, lambda: "+86 138 0013 8000", {"aliyun-params": '{"code": "4711"}'})
    if kind == "whatsapp":
        wa = WhatsAppServer()
        raw = {"type": "whatsapp", "base_url": wa.url, "phone_number_id": wa.phone_number_id,
               "access_token": wa.token}  # fmt: skip
        headers = {"whatsapp-template": "order_ready", "whatsapp-params": '["Ann", "A-17"]'}
        return Setup(raw, wa, lambda: "+4915123456789", headers)
    if kind == "wechat":
        wc = WeChatServer()
        raw = {"type": "wechat", "base_url": wc.url, "app_id": wc.app_id,
               "app_secret": wc.app_secret}  # fmt: skip
        headers = {"wechat-template-id": "tmpl-points-earned", "wechat-data": '{"points": 120}'}
        return Setup(raw, wc, lambda: "oXyZ1234567890abcdef", headers)
    if kind == "fcm":
        fcm = FcmServer()
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps(fcm.account()))
        raw = {"type": "fcm", "base_url": fcm.url, "project_id": fcm.project_id,
               "service_account_file": str(key_file)}  # fmt: skip
        return Setup(raw, fcm, lambda: "dGVzdC1mY20tdG9rZW4:APA91b" + "x" * 130, {})
    if kind == "apns":
        apns = ApnsServer()
        p8 = tmp_path / f"AuthKey_{apns.key_id}.p8"
        p8.write_bytes(apns.p8())
        raw = {"type": "apns", "base_url": apns.url, "team_id": apns.team_id,
               "key_id": apns.key_id, "private_key_file": str(p8), "topic": apns.topic,
               "http2": False}  # fmt: skip
        return Setup(raw, apns, lambda: "ab" * 32, {})
    push = PushService()
    raw = {"type": "webpush", "vapid_private_key": VAPID_PRIVATE,
           "subject": "mailto:push@mallpulse.test", "allow_http_endpoints": True}  # fmt: skip
    return Setup(raw, push, lambda: json.dumps(push.subscribe()), {})
