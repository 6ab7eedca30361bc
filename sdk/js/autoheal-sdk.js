// Write autoheal remediation plugins in JavaScript (or TypeScript).
//
// A plugin is a WebAssembly component built with componentize-js: a function
// gets one Alertmanager alert and the manifest's [config] table and returns a
// short summary of what it did, or skip(reason) when it decided to do
// nothing. It reaches the world only through the container calls (inspect,
// restart, signal, exec, logs, listByLabel: what its manifest allows,
// nothing else), http, prometheus and state (when its manifest has those
// sections) and the log functions; files, sockets and the environment are
// not there.
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
//
// This file is the SDK inside a component (build.mjs bundles it as
// "autoheal-sdk"): it hands core.js the host's imports, and replaces what
// the engine has but cannot do here (fetch, timers) with an Error saying
// what to use instead. Under `node --test` "autoheal-sdk" is core.js alone,
// and autoheal-sdk/testing hands it fakes.

import log from "log";
import * as containers from "autoheal:plugin/containers@0.4.0";
import * as witHttp from "autoheal:plugin/http@0.4.0";
import * as witPrometheus from "autoheal:plugin/prometheus@0.4.0";
import * as witState from "autoheal:plugin/state@0.4.0";
import { setHost } from "./core.js";

export * from "./core.js";

setHost({
  inspect: (name) => containers.inspect(name),
  restart: (name) => containers.restart(name),
  signal: (name, signal) => containers.signal(name, signal),
  exec: (name, argv) => containers.exec(name, argv),
  logs: (name, tail) => containers.logs(name, tail),
  listByLabel: (selector) => containers.listByLabel(selector),
  httpRequest: (request) => witHttp.request(request),
  prometheusQuery: (promql, time) => witPrometheus.query(promql, time),
  prometheusQueryRange: (promql, start, end, step) => witPrometheus.queryRange(promql, start, end, step),
  stateGet: (key) => witState.get(key),
  // The WIT's ttl-seconds is a u64: a BigInt to componentize-js.
  stateSet: (key, value, ttl) => witState.set(key, value, ttl === null ? undefined : BigInt(ttl)),
  stateDelete: (key) => witState["delete"](key),
  log: (level, message) => log(level, message),
});

/** A global the engine has that does nothing useful in a plugin: throws, naming what to use instead. */
function unavailable(what, instead) {
  return function () {
    throw new Error(`${what} is not available in autoheal plugins: ${instead}`);
  };
}

const NO_WAITING =
  "a plugin answers each alert at once and cannot wait (the timer would never fire); " +
  "return skip(reason) and the host tries the alert again while it fires";
// Without these, fetch ends in an "unreachable" trap (no wasi:http is
// granted) and a timer callback silently never runs.
globalThis.fetch = unavailable(
  "fetch",
  "a plugin has no network of its own; it reaches only what its manifest allows, through http.request() " +
    "([capabilities.http]), prometheus.query() and the container calls",
);
globalThis.setTimeout = unavailable("setTimeout", NO_WAITING);
globalThis.setInterval = unavailable("setInterval", NO_WAITING);
