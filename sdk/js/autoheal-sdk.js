// Write autoheal remediation plugins in JavaScript (or TypeScript).
//
// A plugin is a WebAssembly component built with componentize-js: a function
// gets one Alertmanager alert and the manifest's [config] table and returns a
// short summary of what it did, or skip(reason) when it decided to do
// nothing. It reaches the world only through inspect/restart (the
// containers its manifest names, nothing else) and the log functions; files,
// sockets and the environment are not there.
//
//   import { plugin, restart, info, skip } from "autoheal-sdk";
//
//   export const handle = plugin((alert, config) => {
//     if (!alert.isFiring) return skip("nothing to do: alert is resolved");
//     const name = alert.requireLabel(config.container_label ?? "container");
//     restart(name);
//     info(`restarted ${name}`);
//     return `restarted ${name}`;
//   });
//
// Return skip(reason) whenever the plugin looked and decided that nothing
// should be done (healthy, too young, resolved): the host records
// action_skipped, neither a success nor a failure, with no full cooldown, so
// the alert is tried again while it fires. Throw a PluginError to fail with a
// message; anything else thrown fails the action too, with its message and
// stack in the event.

import log from "log";
import * as containers from "autoheal:plugin/containers@0.2.0";

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
  let raw;
  try {
    raw = containers.inspect(name);
  } catch (e) {
    throw containerError(e);
  }
  return {
    name: raw.name,
    state: raw.state,
    startedAt: raw.startedAt,
    uptimeSeconds: optionalNumber(raw.uptimeSeconds),
    restartCount: Number(raw.restartCount),
    health: raw.health ?? null,
  };
}

/** Restarts container `name`; in dry-run the host only records it. */
export function restart(name) {
  try {
    containers.restart(name);
  } catch (e) {
    throw containerError(e);
  }
}

export const debug = (message) => log("debug", String(message));
export const info = (message) => log("info", String(message));
export const warn = (message) => log("warn", String(message));
export const error = (message) => log("error", String(message));

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

function failure(thrown) {
  if (thrown instanceof PluginError || thrown instanceof ContainerError) return thrown.message;
  if (thrown instanceof Error) {
    let stack = String(thrown.stack ?? "");
    if (stack.length > MAX_STACK) stack = "…" + stack.slice(-MAX_STACK);
    return `${thrown.name}: ${thrown.message}${stack ? "\n" + stack : ""}`;
  }
  return typeof thrown === "string" ? thrown : `thrown: ${JSON.stringify(thrown)}`;
}

/**
 * The component's `handle` export for `handler`: `export const handle = plugin(fn)`.
 * The handler's return value is what it did (null or undefined read as
 * "ok"), or skip(reason) when it did nothing; anything thrown fails the
 * action with its message (and stack).
 */
export function plugin(handler) {
  return function handle(alert, config) {
    let answer;
    try {
      answer = handler(new Alert(alert), Object.fromEntries(config));
    } catch (e) {
      // componentize-js turns a thrown string into the export's `err`.
      throw failure(e);
    }
    // The WIT `outcome` variant, as componentize-js spells one.
    if (answer instanceof Skipped) return { tag: "skipped", val: answer.reason };
    return { tag: "acted", val: answer === undefined || answer === null ? "ok" : String(answer) };
  };
}
