"""The two small scripts a shop page needs for Web Push, served by api_push: the service worker
(shows the notification a push carries) and the page helper (subscribes with our VAPID key and
registers the subscription with the customer's token)."""

from __future__ import annotations

SERVICE_WORKER = """\
// MallPulse web push service worker: shows the notification a push message carries.
self.addEventListener('push', (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = {body: event.data.text()};
  }
  const title = data.title || 'MallPulse';
  event.waitUntil(self.registration.showNotification(title, {
    body: data.body || '', tag: data.id ? 'mp-' + data.id : undefined, data: data,
  }));
});
self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = event.notification.data && event.notification.data.url;
  if (url) { event.waitUntil(clients.openWindow(url)); }
});
"""

PAGE_HELPER = """\
// MallPulse web push page helper.
//   await MallPulsePush.subscribe({api: 'https://api.example', token: '<customer push token>',
//                                  serviceWorker: '/mallpulse-sw.js'})
// resolves to the stored subscription; rejects with the browser's error (permission refused,
// push service unreachable) or with the API's problem detail.
(function (global) {
  function keyBytes(b64url) {
    const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
    const raw = atob(b64 + '='.repeat((4 - b64.length % 4) % 4));
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  async function problem(resp) {
    let detail = resp.statusText;
    try { detail = (await resp.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error('MallPulse push API ' + resp.status + ': ' + detail);
  }
  async function vapidKey(api) {
    const resp = await fetch(api + '/v1/messaging/push/vapid-public-key');
    if (!resp.ok) { await problem(resp); }
    return (await resp.json()).public_key;
  }
  async function register(api, token, subscription) {
    const resp = await fetch(api + '/v1/messaging/push/subscriptions', {
      method: 'POST',
      headers: {'Content-Type': 'application/json', 'X-Push-Token': token},
      body: JSON.stringify(subscription),
    });
    if (!resp.ok) { await problem(resp); }
    return resp.json();
  }
  async function subscribe(opts) {
    if (!('serviceWorker' in navigator) || !('PushManager' in global)) {
      throw new Error('this browser has no Web Push');
    }
    const reg = await navigator.serviceWorker.register(opts.serviceWorker || '/mallpulse-sw.js');
    await navigator.serviceWorker.ready;
    const allowed = Notification.permission === 'granted' ||
      await Notification.requestPermission() === 'granted';
    if (!allowed) {
      throw new Error('notifications not allowed');
    }
    const key = keyBytes(await vapidKey(opts.api));
    const sub = await reg.pushManager.subscribe({userVisibleOnly: true, applicationServerKey: key});
    return register(opts.api, opts.token, sub.toJSON());
  }
  async function unsubscribe(opts) {
    const reg = await navigator.serviceWorker.getRegistration();
    const sub = reg && await reg.pushManager.getSubscription();
    if (!sub) { return false; }
    const url = opts.api + '/v1/messaging/push/subscriptions?endpoint=' +
      encodeURIComponent(sub.endpoint);
    const resp = await fetch(url, {method: 'DELETE', headers: {'X-Push-Token': opts.token}});
    if (!resp.ok && resp.status !== 404) { await problem(resp); }
    return sub.unsubscribe();
  }
  global.MallPulsePush = {subscribe, unsubscribe, register, vapidKey, keyBytes};
})(self);
"""
