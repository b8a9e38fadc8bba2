"""Cost of tracking per message, against work the hub does anyway, in the same run.

1. Link rewriting: `tracking.instrument` (20 links rewritten into signed redirects, the open
   pixel added) on a rendered ~11 KB HTML e-mail, against rendering that e-mail from its
   template (sandboxed Jinja2, compiled once, plus the plain-text part), which every message
   pays. Ratio = instrument / render.
2. Webhook verification: `check_signature` (our hmac scheme, 1 KB body) against a bare
   `hmac.new(...).hexdigest()` of the same bytes. Ratio = check / bare.

Pure CPU, no database. The load average is printed with the figures: the machine is shared.

    python bench/bench_tracking.py [--messages 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pydantic import SecretStr  # noqa: E402

from cloud.crm.messaging import tracking  # noqa: E402
from cloud.crm.messaging.templates import Template, render  # noqa: E402

ROW = """<tr><td><h2>{{ item.name }}</h2><p>Only {{ item.price }} this week at {{ profile.city }}.
Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore
et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut
aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse
cillum dolore eu fugiat nulla pariatur, excepteur sint occaecat cupidatat non proident.</p>
<a href="https://shop.example/p/{{ item.id }}?utm_source=mail&amp;utm_campaign=spring">See it</a>
</td></tr>"""
BODY = (
    "<html><body><h1>Hi {{ profile.first_name }}</h1><table>{% for item in items %}"
    + ROW
    + "{% endfor %}</table></body></html>"
)


def _best(fn: object, n: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(n):
            fn(i)  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    n = args.messages
    template = Template("bench", "email", "en", "html", BODY, "Spring")
    variables = {
        "profile": {"first_name": "Ann", "city": "Shanghai"},
        "items": [{"id": i, "name": f"Item {i}", "price": f"{i}.99"} for i in range(20)],
    }
    rendered = render(template, variables)
    cfg = tracking.TrackingConfig(secret=SecretStr("k" * 32), base_url="https://t.example")
    render_s = _best(lambda i: render(template, variables), n)
    instrument_s = _best(lambda i: tracking.instrument(rendered, i + 1, cfg), n)

    body = os.urandom(1024)
    auth = tracking.WebhookAuth(scheme="hmac", secret=SecretStr("w" * 32))
    ts = f"{time.time():.0f}"
    sig = tracking.hmac_signature("w" * 32, ts, body)
    req = tracking.SignedRequest(
        url="https://x/", body=body, headers={"x-mallpulse-timestamp": ts,
        "x-mallpulse-signature": sig}, query={},
    )  # fmt: skip
    check_s = _best(lambda i: tracking.check_signature(auth, req, tolerance_s=300), n * 10)
    bare_s = _best(
        lambda i: hmac.new(b"w" * 32, ts.encode() + b"." + body, hashlib.sha256).hexdigest(), n * 10
    )
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
    print(f"html e-mail: {len(rendered.html or '')} chars, 20 links")
    print(f"render (baseline):   {render_s * 1e6:8.1f} us/message")
    print(f"instrument:          {instrument_s * 1e6:8.1f} us/message")
    print(f"ratio instrument/render: {instrument_s / render_s:.3f}")
    print(f"bare hmac (baseline):{bare_s * 1e6:8.1f} us/webhook")
    print(f"check_signature:     {check_s * 1e6:8.1f} us/webhook")
    print(f"ratio check/bare: {check_s / bare_s:.2f}")


if __name__ == "__main__":
    main()
