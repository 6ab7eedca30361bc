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
  log: (level) => missing(level)(),
};

function missing(call) {
  return () => {
    throw new Error(`autoheal-sdk ${call}() has no host outside a component: in a test, install a FakeHost from "autoheal-sdk/testing"`);
  };
}

/** Replaces the host calls ({inspect, restart, signal, exec, logs, listByLabel, log}); returns the ones before. */
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
  if (thrown instanceof PluginError || thrown instanceof ContainerError) return thrown.message;
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
