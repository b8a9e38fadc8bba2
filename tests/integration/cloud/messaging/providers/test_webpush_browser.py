"""Web Push end to end in headless Chromium, as far as it can be proven offline.

Chromium's PushManager.subscribe registers with Google's push service (FCM), which this network
cannot reach, so a browser-issued endpoint cannot be had here. What is proven instead:
1. the shop page loads our push.js from the API (another origin), fetches the VAPID key over CORS
   and registers our service worker, which activates; the real PushManager.subscribe is called
   with that key and, offline, fails with AbortError ("Registration failed"), which Chromium
   also answers for a malformed 65-byte key: it does NOT prove Chromium accepted our key;
2. keys made by the browser's own WebCrypto (an ECDH P-256 pair and a 16-byte auth secret, what a
   push subscription holds) are registered through push.js with the customer's push token, over
   CORS, and stored;
3. the adapter sends to that stored subscription: pywebpush encrypts, VAPID signs, the local push
   service checks VAPID and relays the ciphertext, and the browser decrypts it with WebCrypto
   (RFC 8291 / RFC 8188) to the exact payload.
Not proven: delivery through a real push service to Chromium's push stack and its service worker."""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from cloud.core.security import Role
from cloud.core.settings import Settings
from cloud.crm.messaging import webpush_store
from cloud.crm.messaging.channels.base import OutboundMessage, build_channel, parse_config
from cloud.crm.messaging.channels.jwt import unb64url
from tests.support.providers import PushService

CHROMIUM = os.environ.get("MALLPULSE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

#: RFC 8291 decryption with WebCrypto: what a browser does with a push message's body.
DECRYPT_JS = """
async ([keys, bodyB64]) => {
  const b = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  const body = b(bodyB64), enc = new TextEncoder();
  const salt = body.slice(0, 16), idlen = body[20], asPublic = body.slice(21, 21 + idlen);
  const cipher = body.slice(21 + idlen);
  const asKey = await crypto.subtle.importKey('raw', asPublic, {name: 'ECDH', namedCurve: 'P-256'},
                                              false, []);
  const shared = await crypto.subtle.deriveBits({name: 'ECDH', public: asKey},
                                                window.__push.privateKey, 256);
  const hkdf = async (salt, ikm, info, bits) => crypto.subtle.deriveBits(
    {name: 'HKDF', hash: 'SHA-256', salt, info},
    await crypto.subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']), bits);
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let i = 0; for (const p of parts) { out.set(p, i); i += p.length; } return out;
  };
  const keyInfo = concat(enc.encode('WebPush: info\\0'), window.__push.publicRaw, asPublic);
  const ikm = await hkdf(window.__push.auth, shared, keyInfo, 256);
  const cek = await hkdf(salt, ikm, enc.encode('Content-Encoding: aes128gcm\\0'), 128);
  const nonce = await hkdf(salt, ikm, enc.encode('Content-Encoding: nonce\\0'), 96);
  const aes = await crypto.subtle.importKey('raw', cek, 'AES-GCM', false, ['decrypt']);
  const plain = new Uint8Array(await crypto.subtle.decrypt({name: 'AES-GCM', iv: nonce}, aes,
                                                           cipher));
  let end = plain.length - 1; while (plain[end] === 0) { end--; }
  if (plain[end] !== 2) { throw new Error('not the last record'); }
  return new TextDecoder().decode(plain.slice(0, end));
}
"""

#: Make what a push subscription holds with the browser's WebCrypto and register it via push.js.
SUBSCRIBE_JS = """
async ([api, token, endpoint]) => {
  const pair = await crypto.subtle.generateKey({name: 'ECDH', namedCurve: 'P-256'}, false,
                                               ['deriveBits']);
  const publicRaw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
  const auth = crypto.getRandomValues(new Uint8Array(16));
  window.__push = {privateKey: pair.privateKey, publicRaw, auth};
  const b64url = (a) => btoa(String.fromCharCode(...a)).replace(/\\+/g, '-').replace(/\\//g, '_')
    .replace(/=+$/, '');
  const keys = {p256dh: b64url(publicRaw), auth: b64url(auth)};
  const sub = {endpoint, expirationTime: null, keys};
  return await MallPulsePush.register(api, token, sub);
}
"""

#: The real PushManager.subscribe with the key from our API: its outcome, named.
REAL_SUBSCRIBE_JS = """
async () => {
  const reg = await navigator.serviceWorker.register('/mallpulse-sw.js');
  await navigator.serviceWorker.ready;
  const key = MallPulsePush.keyBytes(await MallPulsePush.vapidKey(window.__api));
  try {
    const sub = await reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: key});
    return {ok: true, endpoint: sub.endpoint, active: !!reg.active, key: Array.from(key)};
  } catch (e) {
    return {ok: false, name: e.name, message: e.message, active: !!reg.active,
            key: Array.from(key)};
  }
}
"""


@pytest.fixture(scope="module")
def api(push_settings: Settings, pg_pool: Any) -> Iterator[str]:
    """The real API (uvicorn) with web push configured."""
    import uvicorn

    from cloud.api.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(push_settings, pool=pg_pool), log_config=None, timeout_graceful_shutdown=1
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if srv.started:
            break
        threading.Event().wait(0.02)
    assert srv.started, "the API did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def shop(api: str) -> Iterator[str]:
    """The shop's site (another origin): its page, and our service worker hosted at its root."""
    worker = httpx.get(f"{api}/v1/messaging/push/sw.js").text
    page = (
        f'<html><head><script>window.__api = "{api}";</script>'
        f'<script src="{api}/v1/messaging/push/push.js"></script></head>'
        "<body>shop</body></html>"
    )

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body, kind = (
                (worker, "text/javascript") if self.path.endswith(".js") else (page, "text/html")
            )
            raw = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def page(shop: str) -> Iterator[Any]:
    """A headless Chromium page on the shop, notifications allowed."""
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}; `apt-get install -y chromium`")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        context = browser.new_context()
        context.grant_permissions(["notifications"], origin=shop)
        tab = context.new_page()
        tab.goto(shop + "/shop")
        yield tab
        browser.close()


def test_the_page_gets_our_key_and_runs_our_service_worker(
    page: Any, push_client: Any, webpush_raw: dict[str, Any]
) -> None:
    outcome = page.evaluate(REAL_SUBSCRIBE_JS)
    assert outcome["active"], outcome  # our sw.js parsed, installed and activated
    served = push_client.get("/v1/messaging/push/vapid-public-key").json()["public_key"]
    assert bytes(outcome["key"]) == unb64url(served)  # fetched cross-origin, decoded by push.js
    # Offline the registration with the push service fails; online the subscription is real.
    assert outcome["ok"] or outcome["name"] == "AbortError", outcome


def test_browser_made_keys_receive_and_decrypt_the_message(
    page: Any,
    api: str,
    push_service: PushService,
    push_client: Any,
    token_for: Any,
    pg_pool: Any,
    new_profile: Callable[..., int],
    webpush_raw: dict[str, Any],
) -> None:
    profile = new_profile()
    token = push_client.post(
        "/v1/messaging/push/tokens",
        json={"profile_id": profile},
        headers=token_for(Role.HQ_MARKETER),
    ).json()["token"]
    endpoint = push_service.endpoint_for_browser()
    stored = page.evaluate(SUBSCRIBE_JS, [api, token, endpoint])
    assert stored["profile_id"] == profile and stored["endpoint"] == endpoint
    with pg_pool.connection() as conn:
        (row,) = webpush_store.for_profile(conn, profile)
    channel = build_channel(parse_config(webpush_raw))
    message = OutboundMessage(
        message_id=4242,
        address=row.address(),
        subject="会员日",
        body="Double points until 22:00 ✨",
        profile_id=profile,
    )
    location = channel.send(message)
    (relayed,) = [r for r in push_service.accepted if r.provider_id == location]
    assert b"Double points" not in relayed.body  # encrypted on the wire
    plain = page.evaluate(DECRYPT_JS, [row.address(), base64.b64encode(relayed.body).decode()])
    assert json.loads(plain) == {
        "title": "会员日",
        "body": "Double points until 22:00 ✨",
        "id": 4242,
    }
