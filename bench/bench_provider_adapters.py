"""Sends per second of each HTTP provider adapter into its local provider server
(tests/support/providers.py), against a bare httpx POST of the same request, prebuilt, to the
same server on one reused connection, in the same run.

What the ratio measures is the adapter's own cost per message: validating the address
(libphonenumber), building the provider's body, signing (Aliyun's HMAC, the cached OAuth2 /
WeChat / APNs tokens), translating the answer; for Web Push also encrypting the payload for the
subscription's keys (a fresh ECDH key pair and HKDF per message, RFC 8291) and signing a VAPID
JWT per message. The servers run in this process (threads), so both sides share their cost; the
figures are for comparing, not a provider's capacity. The load average is printed: the machine is
shared.

    python bench/bench_provider_adapters.py [--messages 500]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from cloud.crm.messaging.channels.base import (  # noqa: E402
    Channel,
    OutboundMessage,
    build_channel,
    parse_config,
)
from tests.support import providers as prov  # noqa: E402

VAPID = "Q0hG1DWGJ8tCTcOEpQY7yEF3B2bS9rw3mhX-a-3-7Qs"


def _setups(
    folder: Path,
) -> list[tuple[str, prov.ProviderServer, dict[str, Any], str, dict[str, str]]]:
    """(type, server, raw config, address, headers) for each adapter."""
    tw, ali, wa, wc = (
        prov.TwilioServer(),
        prov.AliyunSmsServer(),
        prov.WhatsAppServer(),
        prov.WeChatServer(),
    )
    fcm, apns, push = prov.FcmServer(), prov.ApnsServer(), prov.PushService()
    (folder / "sa.json").write_text(json.dumps(fcm.account()))
    (folder / "key.p8").write_bytes(apns.p8())
    return [
        ("twilio", tw, {"type": "twilio", "base_url": tw.url, "account_sid": tw.account_sid,
                        "auth_token": tw.auth_token, "from_number": "+14155552671"},
         "+4915123456789", {}),
        ("aliyun_sms", ali, {"type": "aliyun_sms", "base_url": ali.url, "access_key_id": ali.key_id,
                             "access_key_secret": ali.secret, "sign_name": ali.sign_name,
                             "template_code": "SMS_1001"}, "+8613800138000", {}),
        ("whatsapp", wa, {"type": "whatsapp", "base_url": wa.url,
                          "phone_number_id": wa.phone_number_id, "access_token": wa.token},
         "+4915123456789", {"whatsapp-template": "order_ready", "whatsapp-params": '["Ann"]'}),
        ("wechat", wc, {"type": "wechat", "base_url": wc.url, "app_id": wc.app_id,
                        "app_secret": wc.app_secret}, "oAbc1234567890",
         {"wechat-template-id": "tmpl-points-earned", "wechat-data": '{"points": 1}'}),
        ("fcm", fcm, {"type": "fcm", "base_url": fcm.url, "project_id": fcm.project_id,
                      "service_account_file": str(folder / "sa.json")}, "t" * 150, {}),
        ("apns", apns, {"type": "apns", "base_url": apns.url, "team_id": apns.team_id,
                        "key_id": apns.key_id, "private_key_file": str(folder / "key.p8"),
                        "topic": apns.topic, "http2": False}, "ab" * 32, {}),
        ("webpush", push, {"type": "webpush", "vapid_private_key": VAPID,
                           "subject": "mailto:b@mallpulse.test", "allow_http_endpoints": True},
         json.dumps(push.subscribe()), {}),
    ]  # fmt: skip


def _rate(n: int, send: Callable[[int], object]) -> float:
    send(0)  # warm: connection, tokens
    start = time.perf_counter()
    for i in range(1, n + 1):
        send(i)
    return n / (time.perf_counter() - start)


def _bare(server: prov.ProviderServer) -> Callable[[int], object]:
    """Replays the adapter's last accepted request, prebuilt, with a bare httpx client."""
    last = server.accepted[-1]
    skip = {"content-length", "host", "connection", "accept-encoding", "accept", "user-agent"}
    headers = {k: v for k, v in last.headers.items() if k not in skip}
    url, body, client = server.url + last.path, last.body, httpx.Client()
    if isinstance(server, prov.AliyunSmsServer):
        server.nonces.clear()

        def aliyun(_: int) -> object:
            server.nonces.clear()  # the replayed nonce would be refused: the check is the cost
            return client.post(url, content=body, headers=headers)

        return aliyun
    if isinstance(server, prov.WeChatServer):
        url = server.url + last.path + "?access_token=" + next(iter(server.tokens))
    return lambda _: client.post(url, content=body, headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=500)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}")
    print(f"{'adapter':<11} {'adapter/s':>10} {'bare httpx/s':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind, server, raw, address, headers in _setups(Path(tmp)):
            channel: Channel = build_channel(parse_config(raw))

            def send(i: int, channel: Channel = channel, address: str = address,
                     headers: dict[str, str] = headers) -> object:  # fmt: skip
                return channel.send(OutboundMessage(message_id=i + 1, address=address,
                                                    subject="Sale", body="20% off today",
                                                    headers=headers))  # fmt: skip

            adapter = _rate(args.messages, send)
            bare = _rate(args.messages, _bare(server))
            print(f"{kind:<11} {adapter:>10.0f} {bare:>13.0f} {adapter / bare:>6.2f}")
            server.close()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
