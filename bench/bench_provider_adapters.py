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

    python bench/bench_provider_adapters.py [--messages 500] [--rounds 5]

Adapter and baseline run in interleaved rounds; the medians are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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

TYPES = ["twilio", "aliyun_sms", "whatsapp", "wechat", "fcm", "apns", "webpush"]


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
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = max(1, args.rounds)
    per_round = max(1, args.messages // rounds)
    print(f"load average before: {os.getloadavg()}, cpus: {os.cpu_count()}")
    print(f"{'adapter':<11} {'adapter/s':>10} {'bare httpx/s':>13} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in TYPES:
            setup = prov.setup(kind, Path(tmp))
            server, address, headers = setup.server, setup.address(), setup.headers
            channel: Channel = build_channel(parse_config(setup.raw))

            def send(i: int, channel: Channel = channel, address: str = address,
                     headers: dict[str, str] = headers) -> object:  # fmt: skip
                return channel.send(OutboundMessage(message_id=i + 1, address=address,
                                                    subject="Sale", body="20% off today",
                                                    headers=headers))  # fmt: skip

            send(0)  # one accepted request for the baseline to replay
            bare_send = _bare(server)
            # interleaved rounds, medians: the machine is shared and its load moves
            pairs = [(_rate(per_round, send), _rate(per_round, bare_send)) for _ in range(rounds)]
            adapter = statistics.median(p[0] for p in pairs)
            bare = statistics.median(p[1] for p in pairs)
            print(f"{kind:<11} {adapter:>10.0f} {bare:>13.0f} {adapter / bare:>6.2f}")
            server.close()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
