// The autoheal SDK for JavaScript, without the host: what a plugin imports as
// "autoheal-sdk". Inside a component autoheal-sdk.js hands it the host's
// imports; under `node --test`, autoheal-sdk/testing hands it fakes.

/** Where the host calls go (see setHost). */
let host = {
  inspect: missing("inspect"),
  restart: missing("restart"),
  signal: missing("signal"),
  exec: missing("exec"),
  logs: missing("logs"),
  listByLabel: missing("listByLabel"),
  httpRequest: missing("http.request"),
  prometheusQuery: missing("prometheus.query"),
  prometheusQueryRange: missing("prometheus.queryRange"),
  stateGet: missing("state.get"),
  stateSet: missing("state.set"),
  stateDelete: missing("state.delete"),
  log: (level) => missing(level)(),
};

function missing(call) {
  return () => {
    throw new Error(`autoheal-sdk ${call}() has no host outside a component: in a test, install a FakeHost from "autoheal-sdk/testing"`);
  };
}

/**
 * Replaces the host calls ({inspect, restart, signal, exec, logs,
 * listByLabel, httpRequest, prometheusQuery, prometheusQueryRange, stateGet,
 * stateSet, stateDelete, log}), which answer in the WIT's shapes; returns
 * the ones before.
 */
export function setHost(next) {
  const before = host;
  host = next;
  return before;
}

/** Default for the min_uptime_sec config key, as in the Rust SDK. */
export const DEFAULT_MIN_UPTIME_SEC = 60;

/** The most of a stack kept in the error (the host bounds it too). */
const MAX_STACK = 4000;

/** Fails the action with this message (and no stack). */
export class PluginError extends Error {}

/** What a handler returns when it decided not to act: see skip(). */
export class Skipped {
  constructor(reason) {
    this.reason = String(reason);
  }
}

/** Return this from the handler to say "I decided not to act", and why. */
export const skip = (reason) => new Skipped(reason);

/** A container call failed: kind is "denied", "not_found" or "runtime". */
export class ContainerError extends Error {
  constructor(kind, message) {
    super(kind === "denied" ? `denied: ${message}` : message);
    this.kind = kind;
    this.detail = message;
  }
}

/** One alert of the webhook, with helpers for its labels and annotations. */
export class Alert {
  constructor(raw) {
    this.status = raw.status;
    this.labels = Object.fromEntries(raw.labels);
    this.annotations = Object.fromEntries(raw.annotations);
    this.startsAt = raw.startsAt;
    this.endsAt = raw.endsAt ?? null;
    this.fingerprint = raw.fingerprint;
    this.generatorUrl = raw.generatorUrl;
  }
  /** An alert built in JavaScript (tests), not received from the host. */
  static of(labels = {}, status = "firing", annotations = {}) {
    return new Alert({
      status,
      labels: Object.entries(labels),
      annotations: Object.entries(annotations),
      startsAt: "2024-05-01T10:00:00Z",
      fingerprint: "0123456789abcdef",
      generatorUrl: "",
    });
  }
  get alertname() { return this.labels.alertname ?? ""; }
  get isFiring() { return this.status === "firing"; }
  label(name, fallback = undefined) { return this.labels[name] ?? fallback; }
  annotation(name, fallback = undefined) { return this.annotations[name] ?? fallback; }
  /** The label's value; a missing or empty one fails the action, naming it. */
  requireLabel(name) {
    const value = this.labels[name];
    if (!value) throw new PluginError(`alert ${JSON.stringify(this.alertname)} has no label ${JSON.stringify(name)}`);
    return value;
  }
}

function containerError(thrown) {
  const payload = thrown && thrown.payload;
  if (!payload || typeof payload.tag !== "string") return thrown;
  const kind = payload.tag === "not-found" ? "not_found" : payload.tag;
  const message = kind === "not_found" ? `container ${payload.val} not found` : String(payload.val);
  return new ContainerError(kind, message);
}

const optionalNumber = (v) => (v === undefined || v === null ? null : Number(v));

/** The state of container `name` (one the manifest allows). */
export function inspect(name) {
  const raw = call(() => host.inspect(name));
  return {
    name: raw.name,
    state: raw.state,
    startedAt: raw.startedAt,
    uptimeSeconds: optionalNumber(raw.uptimeSeconds),
    restartCount: Number(raw.restartCount),
    health: raw.health ?? null,
    labels: Object.fromEntries(raw.labels ?? []),
  };
}

/** A host call, its error (a WIT `error` variant) as a ContainerError. */
function call(fn) {
  try {
    return fn();
  } catch (e) {
    throw containerError(e);
  }
}

/** Restarts container `name`; in dry-run the host only records it. */
export function restart(name) {
  call(() => host.restart(name));
}

/**
 * Sends `signal` ("HUP", "USR1"; "SIGHUP" is the same) to container `name`'s
 * main process: only a signal the manifest lists under [capabilities] signals.
 * An effect: in dry-run the host only records it.
 */
export function signal(name, signal) {
  call(() => host.signal(name, String(signal)));
}

/**
 * Runs `argv` (an array of words, never a shell line) in container `name`:
 * only a command the manifest allows under [[capabilities.exec]]. A non-zero
 * exit code is not an error: read exitCode (or success). An effect: in
 * dry-run it is recorded, not run (ran is false).
 */
export function exec(name, argv) {
  if (!Array.isArray(argv)) {
    throw new TypeError("exec() takes the argv as an array of words, not a string: no shell splits it");
  }
  const raw = call(() => host.exec(name, argv.map(String)));
  const exitCode = optionalNumber(raw.exitCode);
  return {
    ran: Boolean(raw.ran),
    exitCode,
    stdout: raw.stdout ?? "",
    stderr: raw.stderr ?? "",
    truncated: Boolean(raw.truncated),
    timedOut: Boolean(raw.timedOut),
    success: Boolean(raw.ran) && exitCode === 0,
  };
}

/**
 * The last `tail` lines of container `name`'s stdout and stderr, oldest
 * first, within the manifest's [capabilities.logs] bounds: {lines: [{source:
 * "stdout"|"stderr", text}], truncated}.
 */
export function logs(name, tail = 100) {
  if (!Number.isInteger(tail) || tail < 0) throw new RangeError(`logs(): tail must be a whole number, got ${tail}`);
  const raw = call(() => host.logs(name, tail));
  return {
    lines: raw.lines.map((line) => ({ source: line.source, text: line.text })),
    truncated: Boolean(raw.truncated),
  };
}

/**
 * The containers carrying a label, `selector` being "KEY=VALUE": only a
 * selector the manifest lists (as "label:KEY=VALUE").
 */
export function listByLabel(selector) {
  return [...call(() => host.listByLabel(selector))];
}

/**
 * A host call failed: kind is the WIT error's case ("denied", ..., with "_"
 * for "-"), detail the host's text. Thrown out of the handler it fails the
 * action with its message (no stack).
 */
export class HostCallError extends Error {
  constructor(kind, message) {
    super(`${kind.replace(/_/g, " ")}: ${message}`);
    this.kind = kind;
    this.detail = message;
  }
}

/**
 * http.request failed: kind is "denied" (the manifest does not allow the
 * method and URL, the address, or a secret; or a host guard refused),
 * "timeout" or "failed" (no answer: a name that does not resolve, a refused
 * connection, TLS, a redirect outside the allow-list). A 4xx or 5xx is an
 * answer, not an error: read response.status.
 */
export class HttpError extends HostCallError {}
/** A Prometheus query failed: kind is "denied", "bad_query" (Prometheus refused the PromQL) or "failed". */
export class PrometheusError extends HostCallError {}
/** A state call failed: kind is "denied" (no [capabilities.state], past a bound) or "failed". */
export class StateError extends HostCallError {}

/** A host call, its error (a WIT `error` variant, `payload.tag`) as an ErrorClass. */
function hostCall(ErrorClass, fn) {
  try {
    return fn();
  } catch (e) {
    const payload = e && e.payload;
    if (e instanceof HostCallError || !payload || typeof payload.tag !== "string") throw e;
    throw new ErrorClass(payload.tag.replace(/-/g, "_"), String(payload.val));
  }
}

/** Headers as [name, value] pairs, from an object, a Map or pairs. */
function headerPairs(headers) {
  if (headers === undefined || headers === null) return [];
  const entries = Array.isArray(headers) ? headers : headers instanceof Map ? [...headers] : Object.entries(headers);
  return entries.map(([name, value]) => [String(name), String(value)]);
}

const utf8 = (text) => new TextEncoder().encode(text);

/**
 * What http.request answered. `sent` is false in dry-run for an effect
 * (recorded, not sent: status 0, no body). `body` is a Uint8Array cut to the
 * manifest's max_response_bytes (`truncated`); a secret's value in it (or in
 * a header) reads "[secret NAME]". A 4xx or 5xx is an answer: check `ok`.
 */
export class HttpResponse {
  constructor({ sent = true, status, headers = [], body = new Uint8Array(), truncated = false }) {
    this.sent = Boolean(sent);
    this.status = Number(status);
    this.headers = headerPairs(headers);
    this.body = typeof body === "string" ? utf8(body) : Uint8Array.from(body ?? []);
    this.truncated = Boolean(truncated);
  }
  /** A 2xx status (false when not sent). */
  get ok() { return this.status >= 200 && this.status < 300; }
  /** The body as text (UTF-8, invalid bytes replaced). */
  text() { return new TextDecoder().decode(this.body); }
  /** The body parsed as JSON (a SyntaxError if it is not). */
  json() { return JSON.parse(this.text()); }
  /** The first header called `name` (any case), or null. */
  header(name) {
    const wanted = String(name).toLowerCase();
    const found = this.headers.find(([key]) => key.toLowerCase() === wanted);
    return found ? found[1] : null;
  }
}

function secretNames(secrets) {
  if (secrets === undefined || secrets === null) return [];
  return typeof secrets === "string" ? [secrets] : [...secrets].map(String);
}

/**
 * Sends `method` `url` with {headers, body, secrets}: headers an object or
 * [name, value] pairs, body a string (sent as UTF-8) or bytes, secrets the
 * *names* of the manifest's secrets for the host to put in (the plugin never
 * sees a value). Only what [capabilities.http] allow lists; GET and HEAD are
 * reads, other methods effects (recorded, not sent, in dry-run).
 */
function request(method, url, { headers, body, secrets } = {}) {
  const raw = hostCall(HttpError, () =>
    host.httpRequest({
      method: String(method).trim().toUpperCase(),
      url: String(url),
      headers: headerPairs(headers),
      body: body === undefined || body === null ? undefined : typeof body === "string" ? utf8(body) : Uint8Array.from(body),
      secrets: secretNames(secrets),
    }),
  );
  return new HttpResponse(raw);
}

/** HTTP to what the manifest's [capabilities.http] allow lists (see request). */
export const http = Object.freeze({
  request,
  /** A GET: a read, performed in dry-run too. */
  get: (url, options = {}) => request("GET", url, options),
  /**
   * A POST: an effect, recorded and not sent in dry-run. `json: value` sends
   * it as JSON, with Content-Type application/json unless headers set one.
   */
  post(url, { json, ...options } = {}) {
    if (json === undefined) return request("POST", url, options);
    if (options.body !== undefined) throw new TypeError("http.post(): give body or json, not both");
    const headers = headerPairs(options.headers);
    if (!headers.some(([name]) => name.toLowerCase() === "content-type")) headers.push(["Content-Type", "application/json"]);
    return request("POST", url, { ...options, headers, body: JSON.stringify(json) });
  },
});

/** A query's answer, in the SDK's shape: {series: [{labels, samples, value}], truncated, value}. */
function promAnswer(raw) {
  const series = raw.series.map((s) => {
    const samples = s.samples.map(([t, v]) => [Number(t), Number(v)]);
    return { labels: Object.fromEntries(s.labels), samples, value: samples.length ? samples[samples.length - 1][1] : null };
  });
  return { series, truncated: Boolean(raw.truncated), value: series.length ? series[0].value : null };
}

const anyAbove = (answer, threshold) => answer.series.some((s) => s.value !== null && s.value > threshold);
const anyBelow = (answer, threshold) => answer.series.some((s) => s.value !== null && s.value < threshold);
/** A label value inside PromQL's double quotes. */
const promqlString = (value) => String(value).replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

function query(promql, time = null) {
  return promAnswer(hostCall(PrometheusError, () => host.prometheusQuery(String(promql), time === null ? undefined : Number(time))));
}

/**
 * PromQL against the host's prometheus_url, with [capabilities.prometheus].
 * Reads: performed in dry-run too. The questions a plugin asks before it
 * acts have helpers: value, anyAbove / anyBelow, stillFailing, isFiring.
 */
export const prometheus = Object.freeze({
  /** An instant query, now or at `time` (unix seconds). */
  query,
  /** A range query from `start` to `end` (unix seconds) every `step` seconds. */
  queryRange(promql, start, end, step) {
    if (!(step > 0)) throw new RangeError(`prometheus.queryRange(): step must be above 0 seconds, got ${step}`);
    const raw = hostCall(PrometheusError, () => host.prometheusQueryRange(String(promql), Number(start), Number(end), Number(step)));
    return promAnswer(raw);
  },
  /** The value of `promql` now when it returns one series; null when none; more than one is a PluginError (aggregate them). */
  value(promql) {
    const answer = query(promql);
    if (answer.series.length > 1) {
      throw new PluginError(
        `prometheus.value(${JSON.stringify(promql)}): ${answer.series.length} series came back, not one: ` +
          "aggregate them (max(...), sum(...)) or use prometheus.query()",
      );
    }
    return answer.value;
  },
  /** Some series of `promql` is above `threshold` now ("is the error rate still high?"). No series: false. */
  anyAbove: (promql, threshold) => anyAbove(query(promql), threshold),
  /** Some series of `promql` is below `threshold` now ("is the probe still failing?"). No series: false. */
  anyBelow: (promql, threshold) => anyBelow(query(promql), threshold),
  /**
   * Whether an alert condition still holds: `promql`, written as an alerting
   * rule's expr (`probe_success{job="crm"} == 0`), returns at least one
   * series now, whatever its value. A bare metric returns series while
   * healthy too: compare it, or use anyBelow.
   */
  stillFailing: (promql) => query(promql).series.length > 0,
  /** Whether Prometheus still has alert `alertname` firing with these labels (its ALERTS series). */
  isFiring(alertname, labels = {}) {
    const matchers = [`alertname="${promqlString(alertname)}"`, 'alertstate="firing"'];
    for (const [key, value] of Object.entries(labels)) matchers.push(`${key}="${promqlString(value)}"`);
    return query(`ALERTS{${matchers.join(",")}}`).series.length > 0;
  },
});

/**
 * The plugin's own key-value store, with [capabilities.state]: kept across
 * invocations (and restarts; shared by a cluster's replicas). Keys are 1 to
 * 128 characters of [A-Za-z0-9_.:-], values text. set and delete are
 * effects: in dry-run recorded, not kept.
 */
export const state = Object.freeze({
  /** The value of `key`, or null if it is not set (or expired). */
  get: (key) => hostCall(StateError, () => host.stateGet(String(key))) ?? null,
  /** Sets `key` to `value` (a string) for `ttlSeconds` (null: the manifest's max_ttl). */
  set(key, value, ttlSeconds = null) {
    if (typeof value !== "string") {
      throw new TypeError(`state.set(${JSON.stringify(key)}, ...): values are strings, got ${typeof value}: store String(value) or JSON.stringify(value)`);
    }
    if (ttlSeconds !== null && !(Number.isInteger(ttlSeconds) && ttlSeconds >= 0)) {
      throw new RangeError(`state.set(${JSON.stringify(key)}, ...): ttlSeconds must be a whole number of seconds, got ${ttlSeconds}`);
    }
    hostCall(StateError, () => host.stateSet(String(key), value, ttlSeconds));
  },
  /** Removes `key`; false if it was not set. */
  delete: (key) => Boolean(hostCall(StateError, () => host.stateDelete(String(key)))),
});

export const debug = (message) => host.log("debug", String(message));
export const info = (message) => host.log("info", String(message));
export const warn = (message) => host.log("warn", String(message));
export const error = (message) => host.log("error", String(message));

/** The min_uptime_sec config key in seconds, or the default. */
export function minUptimeSec(config) {
  const text = config.min_uptime_sec;
  if (text === undefined) return DEFAULT_MIN_UPTIME_SEC;
  const value = /^\d+$/.test(text) ? Number(text) : -1;
  if (value < 0) throw new PluginError(`config key min_uptime_sec: ${JSON.stringify(text)} is not a whole number of seconds`);
  return value;
}

/** Why not to restart (the reason of a skip) when the container started less than minUptime ago; an unknown uptime does not block. */
export function tooYoung(name, uptimeSeconds, minUptime) {
  if (uptimeSeconds !== null && uptimeSeconds !== undefined && uptimeSeconds < minUptime) {
    return `${name} started ${uptimeSeconds}s ago (min_uptime_sec = ${minUptime})`;
  }
  return null;
}

/** Inspects `name`: why to skip if it is too young, else null (go ahead). */
export function checkUptime(name, minUptime) {
  let found;
  try {
    found = inspect(name);
  } catch (e) {
    if (e instanceof ContainerError && e.kind === "runtime") {
      warn(`uptime of ${name} unknown (${e.detail}); restarting anyway`);
      return null;
    }
    throw e;
  }
  return tooYoung(name, found.uptimeSeconds, minUptime);
}

/**
 * A stack as the author wrote it: each `@source.js:LINE:COL` of the bundle
 * (what the engine reports) mapped back through the source map build.mjs
 * appends to the bundle, to `app.js:LINE:COL`.
 */
export function mapStack(stack) {
  const map = globalThis.__autohealSourceMap;
  if (!map) return stack;
  return stack.replace(/source\.js:(\d+):(\d+)/g, (whole, line, column) => {
    const found = originalPosition(map, Number(line), Number(column));
    return found ?? whole;
  });
}

const VLQ = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Decodes the map's lines once, then finds the segment at or before (line, column), 1-based. */
function originalPosition(map, line, column) {
  if (!map.decoded) {
    const state = [0, 0, 0, 0];
    map.decoded = map.mappings.split(";").map((text) => {
      state[0] = 0;
      return text.split(",").filter(Boolean).map((segment) => {
        const values = [];
        let value = 0;
        let shift = 0;
        for (const char of segment) {
          const digit = VLQ.indexOf(char);
          value += (digit & 31) << shift;
          if (digit & 32) {
            shift += 5;
          } else {
            values.push(value & 1 ? -(value >>> 1) : value >>> 1);
            value = 0;
            shift = 0;
          }
        }
        for (let i = 0; i < values.length && i < 4; i++) state[i] += values[i];
        return values.length >= 4 ? [state[0], state[1], state[2], state[3]] : null;
      }).filter(Boolean);
    });
  }
  const segments = map.decoded[line - 1];
  if (!segments || segments.length === 0) return null;
  let best = segments[0];
  for (const segment of segments) if (segment[0] <= column - 1) best = segment;
  return `${map.sources[best[1]]}:${best[2] + 1}:${best[3] + 1}`;
}

function failure(thrown) {
  if (thrown instanceof PluginError || thrown instanceof ContainerError || thrown instanceof HostCallError) {
    return thrown.message;
  }
  if (thrown instanceof Error) {
    let stack = mapStack(String(thrown.stack ?? ""));
    if (stack.length > MAX_STACK) stack = "…" + stack.slice(-MAX_STACK);
    return `${thrown.name}: ${thrown.message}${stack ? "\n" + stack : ""}`;
  }
  return typeof thrown === "string" ? thrown : `thrown: ${JSON.stringify(thrown)}`;
}

/** Thrown by answer() when the handler failed: `message` is what the host records. */
export class Failed extends Error {}

/**
 * Runs `handler` as the component does: {tag: "acted"|"skipped", val};
 * a failure throws a Failed with the message the host would record.
 */
export function answer(handler, alert, config) {
  let result;
  try {
    result = handler(alert, config);
  } catch (e) {
    throw new Failed(failure(e));
  }
  if (result && typeof result.then === "function") {
    throw new Failed(
      "the handler returned a Promise: autoheal plugins answer synchronously (no async, await or import()); " +
        "call inspect() and restart() directly, they return at once",
    );
  }
  // The WIT `outcome` variant, as componentize-js spells one.
  if (result instanceof Skipped) return { tag: "skipped", val: result.reason };
  return { tag: "acted", val: result === undefined || result === null ? "ok" : String(result) };
}

/**
 * The component's `handle` export for `handler`: `export const handle = plugin(fn)`.
 * The handler's return value is what it did (null or undefined read as
 * "ok"), or skip(reason) when it did nothing; anything thrown fails the
 * action with its message (and stack, mapped back to app.js).
 */
export function plugin(handler) {
  const handle = function handle(alert, config) {
    const raw = alert instanceof Alert ? alert : new Alert(alert);
    const table = Array.isArray(config) ? Object.fromEntries(config) : { ...config };
    try {
      return answer(handler, raw, table);
    } catch (e) {
      // componentize-js turns a thrown string into the export's `err`.
      throw e instanceof Failed ? e.message : e;
    }
  };
  handle.handler = handler;
  return handle;
}
