// Live dashboard: loads /footfall/live, then follows /footfall/stream (server-sent events read
// with fetch so the bearer token travels in a header, resuming with Last-Event-ID).
"use strict";
// Sign-in: the token arrives in the URL fragment (never sent to the server), is moved into
// this tab's sessionStorage and memory, and the fragment is cleared from the address bar and
// history. It is never written to localStorage, where it would outlive the session. A 401
// (expired or revoked token) brings the sign-in prompt back instead of leaving the page stuck.
(function () {
  const $ = (id) => document.getElementById(id);
  const points = [];
  let lastEventId = null;
  let updates = 0;

  localStorage.removeItem("mp.token"); // earlier versions kept it there; do not leave it behind
  const params = new URLSearchParams(location.hash.slice(1));
  let store = params.get("store") || sessionStorage.getItem("mp.store") || localStorage.getItem("mp.store");
  let token = params.get("token") || sessionStorage.getItem("mp.token");
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
  remember();

  function remember() {
    if (store) { sessionStorage.setItem("mp.store", store); localStorage.setItem("mp.store", store); }
    if (token) sessionStorage.setItem("mp.token", token); else sessionStorage.removeItem("mp.token");
  }

  function signIn(message) {
    const form = $("login");
    $("login-msg").textContent = message;
    $("f-store").value = store || "";
    $("f-token").value = "";
    form.hidden = false;
    $("f-token").focus();
    return new Promise((resolve) => {
      form.onsubmit = (e) => {
        e.preventDefault();
        store = $("f-store").value.trim();
        token = $("f-token").value.trim();
        remember();
        form.hidden = true;
        form.onsubmit = null;
        resolve();
      };
    });
  }

  const base = () => "/v1/stores/" + encodeURIComponent(store);

  // fetch with the bearer token; on 401 forget the token, ask for a new one, and try again.
  async function authed(path, extra) {
    for (;;) {
      const headers = Object.assign({}, extra || {}, { Authorization: "Bearer " + token });
      const res = await fetch(base() + path, { headers, cache: "no-store" });
      if (res.status !== 401) return res;
      const body = await res.json().catch(() => ({}));
      token = null;
      remember();
      $("conn").textContent = "signed out"; $("conn").className = "badge off";
      await signIn("Sign in again: " + (body.detail || "your token is no longer accepted") +
                   ". Paste a new token.");
    }
  }

  function showError(msg) { const el = $("error"); el.textContent = msg; el.hidden = !msg; }

  function rows(tableId, items) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren(...items.map((cells) => {
      const tr = document.createElement("tr");
      cells.forEach((c, i) => {
        const td = document.createElement("td");
        td.textContent = c;
        if (i > 0) td.className = "n";
        tr.appendChild(td);
      });
      return tr;
    }));
  }

  function render(live) {
    $("store-name").textContent = live.store_id + " (" + live.timezone + ")";
    $("occupancy").textContent = live.occupancy;
    $("in-today").textContent = live.in_today;
    $("out-today").textContent = live.out_today;
    const q = live.queues.reduce((a, x) => a + x.length, 0);
    const wait = live.queues.reduce((a, x) => Math.max(a, x.estimated_wait_s), 0);
    $("queue").textContent = q;
    $("wait").textContent = live.queues.length ? "est. wait " + Math.round(wait) + " s" : "";
    $("devices").textContent = live.devices_online + " / " + live.devices_total;
    rows("zones", live.zones.map((z) => [z.zone_id, z.occupancy]));
    rows("entrances", live.entrances.map((e) => [e.line_id, "in " + e.in_count, "out " + e.out_count]));
  }

  function drawChart() {
    const svg = $("chart");
    const max = Math.max(1, ...points);
    const step = points.length > 1 ? 600 / (points.length - 1) : 0;
    const coords = points.map((v, i) => (i * step).toFixed(1) + "," + (195 - (v / max) * 185).toFixed(1));
    svg.innerHTML = '<polyline points="' + coords.join(" ") + '"></polyline>';
  }

  async function refresh() {
    const res = await authed("/footfall/live");
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      showError((body.title || "error") + ": " + (body.detail || res.status));
      return false;
    }
    showError("");
    render(await res.json());
    return true;
  }

  function onEvent(ev) {
    if (ev.id) lastEventId = ev.id;
    if (ev.event !== "footfall" || !ev.data) return;
    const body = JSON.parse(ev.data);
    points.push(body.in);
    if (points.length > 120) points.shift();
    drawChart();
    updates += 1;
    $("updates").textContent = updates;
    $("last-event").textContent = body.window_end;
    refresh();
  }

  function parse(block) {
    const ev = { event: "message", data: "", id: null };
    for (const line of block.split("\n")) {
      const i = line.indexOf(":");
      if (i <= 0) continue;
      const k = line.slice(0, i), v = line.slice(i + 1).replace(/^ /, "");
      if (k === "data") ev.data += (ev.data ? "\n" : "") + v;
      else if (k === "event") ev.event = v;
      else if (k === "id") ev.id = v;
    }
    return ev;
  }

  async function follow() {
    for (;;) {
      try {
        const h = { Accept: "text/event-stream" };
        if (lastEventId) h["Last-Event-ID"] = lastEventId;
        const res = await authed("/footfall/stream", h);
        if (!res.ok) throw new Error("stream: HTTP " + res.status);
        $("conn").textContent = "live"; $("conn").className = "badge on";
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n/g, "\n");
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            onEvent(parse(buf.slice(0, cut)));
            buf = buf.slice(cut + 2);
          }
        }
      } catch (err) {
        showError(String(err));
      }
      $("conn").textContent = "reconnecting"; $("conn").className = "badge off";
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  async function start() {
    if (!store || !token) await signIn("Sign in: the store id and a bearer token.");
    if (await refresh()) follow();
  }

  start();
})();
