/* MallPulse browser SDK: Segment-style track/identify/page/alias with a queue, batching, retry
 * with exponential backoff, sendBeacon when the page is hidden or unloads, and consent: where
 * consent is required nothing is tracked, stored or sent before mallpulse.consent(true).
 * Plain JavaScript, no build step. Usage:
 *   <script src="https://API/v1/sdk/mallpulse.js"></script>
 *   <script>var mp = mallpulse.load({writeKey: "mpwk_...", apiHost: "https://API"});</script>
 */
(function (global) {
  "use strict";
  var VERSION = "1.0.0";
  var KEY = "mallpulse:";

  function uuid() {
    if (global.crypto && global.crypto.randomUUID) return global.crypto.randomUUID();
    return "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, function (c) {
      var r = (Math.random() * 16) | 0;
      return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
    });
  }

  function store(get, name, value) {
    // localStorage may be missing or throw (private mode, blocked cookies): memory only then
    try {
      if (get) return global.localStorage.getItem(KEY + name);
      if (value === null) global.localStorage.removeItem(KEY + name);
      else global.localStorage.setItem(KEY + name, value);
    } catch (e) { /* memory only */ }
    return null;
  }

  function Client(opts) {
    if (!opts || !opts.writeKey) throw new Error("mallpulse.load needs a writeKey");
    this.writeKey = opts.writeKey;
    this.url = (opts.apiHost || "").replace(/\/$/, "") + "/v1/events/collect";
    this.consentRequired = opts.consentRequired !== false;
    this.flushAt = opts.flushAt || 20;
    this.flushInterval = opts.flushInterval || 2000;
    this.maxRetries = opts.maxRetries == null ? 10 : opts.maxRetries;
    this.backoffMs = opts.backoffMs || 1000;
    this.maxBackoffMs = opts.maxBackoffMs || 60000;
    this.stats = { sent: 0, retries: 0, dropped: 0, beacons: 0 };
    this.consentState = store(true, "consent");
    this.queue = [];
    this.inFlight = false;
    this.attempt = 0;
    this.timer = null;
    if (this.allowed()) this._restore();
    var self = this;
    var hide = function () { self.beacon(); };
    global.addEventListener("pagehide", hide);
    global.document.addEventListener("visibilitychange", function () {
      if (global.document.visibilityState === "hidden") hide();
    });
  }

  Client.prototype.allowed = function () {
    return !this.consentRequired || this.consentState === "granted";
  };

  /* Record the visitor's choice; withdrawing it drops the queue and the stored ids. */
  Client.prototype.consent = function (granted) {
    this.consentState = granted ? "granted" : "denied";
    if (granted) {
      store(false, "consent", "granted");
      this._restore();
    } else {
      this.queue = [];
      store(false, "queue", null);
      store(false, "anonymous_id", null);
      store(false, "user_id", null);
      this.anonymousId = null;
      this.userId = null;
      if (this.consentRequired) store(false, "consent", "denied");
    }
  };

  Client.prototype._restore = function () {
    this.anonymousId = store(true, "anonymous_id") || uuid();
    store(false, "anonymous_id", this.anonymousId);
    this.userId = store(true, "user_id");
    try {
      var saved = JSON.parse(store(true, "queue") || "[]");
      if (Array.isArray(saved)) this.queue = saved.concat(this.queue);
    } catch (e) { /* a corrupt saved queue is dropped */ }
  };

  Client.prototype._context = function () {
    var ctx = { library: { name: "mallpulse.js", version: VERSION } };
    if (global.location) {
      ctx.page = { path: global.location.pathname, url: global.location.href,
        title: global.document.title, referrer: global.document.referrer };
    }
    if (this.consentRequired) ctx.consent = { categoryPreferences: { analytics: true } };
    return ctx;
  };

  Client.prototype._enqueue = function (msg) {
    if (!this.allowed()) return false; // no tracking before consent
    msg.messageId = uuid();
    msg.timestamp = new Date().toISOString();
    msg.anonymousId = this.anonymousId;
    if (this.userId && !msg.userId) msg.userId = this.userId;
    msg.context = this._context();
    this.queue.push(msg);
    this._save();
    if (this.queue.length >= this.flushAt) this.flush();
    else this._schedule(this.flushInterval);
    return true;
  };

  Client.prototype._save = function () {
    store(false, "queue", JSON.stringify(this.queue.slice(-1000)));
  };

  Client.prototype._schedule = function (ms) {
    if (this.timer) return;
    var self = this;
    this.timer = global.setTimeout(function () { self.timer = null; self.flush(); }, ms);
  };

  Client.prototype.track = function (event, properties) {
    return this._enqueue({ type: "track", event: event, properties: properties || {} });
  };
  Client.prototype.page = function (name, properties) {
    return this._enqueue({ type: "page", name: name || global.document.title,
      properties: properties || {} });
  };
  Client.prototype.identify = function (userId, traits) {
    if (!this.allowed()) return false;
    if (userId) { this.userId = String(userId); store(false, "user_id", this.userId); }
    return this._enqueue({ type: "identify", userId: this.userId || undefined,
      traits: traits || {} });
  };
  Client.prototype.alias = function (userId) {
    return this._enqueue({ type: "alias", userId: String(userId), previousId: this.anonymousId });
  };
  /* Forget the person (log out): a new anonymous id, no user id. */
  Client.prototype.reset = function () {
    this.userId = null;
    store(false, "user_id", null);
    this.anonymousId = uuid();
    if (this.allowed()) store(false, "anonymous_id", this.anonymousId);
  };

  Client.prototype._body = function (batch) {
    return JSON.stringify({ writeKey: this.writeKey, sentAt: new Date().toISOString(),
      batch: batch });
  };

  /* Send up to 100 queued calls; a 2xx or a client error (4xx but 429) removes them, anything
   * else is retried with exponential backoff and jitter. Returns a Promise. */
  Client.prototype.flush = function () {
    var self = this;
    if (this.inFlight || !this.queue.length || !this.allowed()) return Promise.resolve();
    this.inFlight = true;
    var batch = this.queue.slice(0, 100);
    return global.fetch(this.url, { method: "POST", body: this._body(batch), keepalive: true,
      headers: { "Content-Type": "text/plain" } })
      .then(function (res) {
        if (res.ok || (res.status >= 400 && res.status < 500 && res.status !== 429)) {
          if (!res.ok) {
            self.stats.dropped += batch.length;
            res.text().then(function (t) { global.console.warn("mallpulse: dropped", t); });
          } else self.stats.sent += batch.length;
          self._done(batch);
          return;
        }
        self._retry(batch);
      }, function () { self._retry(batch); });
  };

  Client.prototype._done = function (batch) {
    this.queue = this.queue.slice(batch.length);
    this._save();
    this.inFlight = false;
    this.attempt = 0;
    if (this.queue.length) this._schedule(0);
  };

  Client.prototype._retry = function (batch) {
    this.inFlight = false;
    this.attempt += 1;
    if (this.attempt > this.maxRetries) {
      this.stats.dropped += batch.length;
      global.console.warn("mallpulse: giving up on " + batch.length + " calls");
      this._done(batch);
      return;
    }
    this.stats.retries += 1;
    var wait = Math.min(this.maxBackoffMs, this.backoffMs * Math.pow(2, this.attempt - 1));
    this._schedule(wait / 2 + Math.random() * wait / 2);
  };

  /* The page is going away: hand what is queued to sendBeacon (it outlives the page). */
  Client.prototype.beacon = function () {
    if (this.inFlight || !this.queue.length || !this.allowed() || !global.navigator.sendBeacon) {
      return false;
    }
    var batch = this.queue.slice(0, 100);
    var blob = new Blob([this._body(batch)], { type: "text/plain" });
    if (global.navigator.sendBeacon(this.url, blob)) {
      this.stats.beacons += 1;
      this.queue = this.queue.slice(batch.length);
      this._save();
      return true;
    }
    return false;
  };

  global.mallpulse = { VERSION: VERSION, load: function (opts) { return new Client(opts); } };
})(window);
