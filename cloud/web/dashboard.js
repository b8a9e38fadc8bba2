// Live dashboard: loads /footfall/live, then follows /footfall/stream (server-sent events read
// with fetch so the bearer token travels in a header, resuming with Last-Event-ID).
"use strict";
(function () {
  const params = new URLSearchParams(location.hash.slice(1));
  const store = params.get("store") || localStorage.getItem("mp.store");
  const token = params.get("token") || localStorage.getItem("mp.token");
  const $ = (id) => document.getElementById(id);
  const points = [];
  let lastEventId = null;
  let updates = 0;

  if (!store || !token) {
    const form = $("login");
    form.hidden = false;
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      localStorage.setItem("mp.store", $("f-store").value);
      localStorage.setItem("mp.token", $("f-token").value);
      location.hash = "";
      location.reload();
    });
    return;
  }
  const headers = { Authorization: "Bearer " + token };
  const base = "/v1/stores/" + encodeURIComponent(store);

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
    const res = await fetch(base + "/footfall/live", { headers });
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
        const h = Object.assign({ Accept: "text/event-stream" }, headers);
        if (lastEventId) h["Last-Event-ID"] = lastEventId;
        const res = await fetch(base + "/footfall/stream", { headers: h });
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

  refresh().then((ok) => { if (ok) follow(); });
})();
