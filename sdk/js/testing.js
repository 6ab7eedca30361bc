// Fakes of the host, for unit tests of a plugin under plain `node --test`:
//
//   import { test } from "node:test";
//   import assert from "node:assert/strict";
//   import { FakeHost, container, firing, run } from "autoheal-sdk/testing";
//   import { handle } from "./app.js";
//
//   test("restarts the container", () => {
//     const host = FakeHost.install([container("example", { uptimeSeconds: 3600 })]);
//     try {
//       assert.deepEqual(run(handle, firing({ alertname: "Down" }), { container: "example" }),
//         { tag: "acted", val: "restarted example" });
//       assert.deepEqual(host.containers.restarted, ["example"]);
//       assert.deepEqual(host.logs.lines, [["info", "restarted example"]]);
//     } finally {
//       host.uninstall();
//     }
//   });
//
// The fakes answer as the host does: a container that was not seeded is
// not_found, one outside `allowed` denied (the manifest's allow-list: names,
// or "label:KEY=VALUE" for every container carrying that label), one in
// `failing` a runtime error; a restart sets it running with uptime 0. A
// signal outside `signals` and a command outside `commands` (exact argv
// arrays) are denied; null allows any. A container's `output` ([source,
// text] pairs) is what logs() answers; `execs` (argv joined by spaces →
// {exitCode, stdout, stderr}) what exec() does, an unscripted command
// exiting 0 with no output. With `dryRun: true` effects are recorded, not
// performed, and exec answers ran: false.
//
// HTTP, Prometheus and state are scripted the same way (a capability the
// FakeHost is not given is one the manifest lacks: every call denied):
//
//   const host = FakeHost.install([container("crm")], {
//     http: { "POST https://runbooks.internal/api/": response(200, '{"done":true}') },
//     prometheus: { 'probe_success{job="crm"} == 0': [series({ job: "crm" }, 0)] },
//     state: { "tries:crm": "1" },
//   });
//   ... then host.http.calls, host.http.requests[0].secrets,
//   host.prometheus.queries, host.state.values.
//
// new FakeHttp(answers, {allow, secrets}), new FakePrometheus(answers,
// {allowed}) and new FakeState(values, {maxKeys, maxValueBytes}) take the
// manifest's allow-lists and bounds.

import {
  Alert,
  ContainerError,
  Failed,
  HttpError,
  HttpResponse,
  PrometheusError,
  StateError,
  answer,
  setHost,
} from "./core.js";

export { Failed, HttpError, HttpResponse, PrometheusError, StateError };

/** A seeded container, as inspect() tells of it. */
export function container(name, fields = {}) {
  return {
    name,
    state: "running",
    startedAt: "2024-05-01T09:00:00Z",
    uptimeSeconds: 3600,
    restartCount: 0,
    health: null,
    labels: {},
    output: [],
    execs: {},
    ...fields,
  };
}

/** "SIGHUP", "hup" and "HUP" are one signal: "HUP". */
const signalName = (signal) => {
  const upper = String(signal).trim().toUpperCase();
  return upper.startsWith("SIG") ? upper.slice(3) : upper;
};

/** Seeded containers: inspect and restart answer from them and are recorded in `calls` as [capability, name]. */
export class FakeContainers {
  constructor(containers = [], { allowed = null, failing = {}, signals = null, commands = null, dryRun = false } = {}) {
    this.seeded = new Map(containers.map((c) => [c.name, { ...c }]));
    this.allowed = allowed === null ? null : new Set(allowed);
    this.failing = { ...failing };
    this.signals = signals === null ? null : new Set(signals.map(signalName));
    this.commands = commands === null ? null : commands.map((argv) => argv.join("\u0000"));
    this.dryRun = dryRun;
    this.calls = [];
    /** The signals sent (in dry-run: recorded), as [name, signal without SIG]. */
    this.signalled = [];
    /** The commands run (in dry-run: recorded), as [name, argv]. */
    this.executed = [];
  }
  allows(name) {
    if (this.allowed === null || this.allowed.has(name)) return true;
    const labels = this.seeded.get(name)?.labels ?? {};
    return Object.entries(labels).some(([k, v]) => this.allowed.has(`label:${k}=${v}`));
  }
  get restarted() {
    return this.calls.filter(([call]) => call === "restart").map(([, name]) => name);
  }
  find(call, name) {
    this.calls.push([call, name]);
    if (!this.allows(name)) {
      throw new ContainerError("denied", `container ${name} is not in the manifest's containers`);
    }
    if (name in this.failing) throw new ContainerError("runtime", this.failing[name]);
    const found = this.seeded.get(name);
    if (!found) throw new ContainerError("not_found", `container ${name} not found`);
    return found;
  }
  inspect(name) {
    const { output, execs, ...info } = this.find("inspect", name);
    return { ...info, labels: Object.entries(info.labels ?? {}) };
  }
  restart(name) {
    const found = this.find("restart", name);
    if (this.dryRun) return;
    Object.assign(found, { state: "running", uptimeSeconds: 0, restartCount: found.restartCount + 1 });
  }
  signal(name, signal) {
    this.find("signal", name);
    const sig = signalName(signal);
    if (this.signals !== null && !this.signals.has(sig)) {
      throw new ContainerError("denied", `signal ${sig} is not in the manifest's signals`);
    }
    this.signalled.push([name, sig]);
  }
  exec(name, argv) {
    const found = this.find("exec", name);
    if (argv.length === 0) throw new ContainerError("denied", "exec needs a command");
    if (this.commands !== null && !this.commands.includes(argv.join("\u0000"))) {
      throw new ContainerError("denied", `command ${JSON.stringify(argv)} is not in the manifest's exec`);
    }
    this.executed.push([name, [...argv]]);
    if (this.dryRun) return { ran: false, exitCode: null, stdout: "", stderr: "", truncated: false, timedOut: false };
    const scripted = (found.execs ?? {})[argv.join(" ")] ?? {};
    return { ran: true, exitCode: 0, stdout: "", stderr: "", truncated: false, timedOut: false, ...scripted };
  }
  logs(name, tail) {
    const found = this.find("logs", name);
    const lines = (found.output ?? []).map(([source, text]) => ({ source, text }));
    return { lines: tail === 0 ? [] : lines.slice(-tail), truncated: false };
  }
  listByLabel(selector) {
    this.calls.push(["list-by-label", selector]);
    const at = selector.indexOf("=");
    if (at <= 0) throw new ContainerError("denied", `selector ${JSON.stringify(selector)} is not KEY=VALUE`);
    if (this.allowed !== null && !this.allowed.has(`label:${selector}`)) {
      throw new ContainerError("denied", `selector ${selector} is not in the manifest's containers`);
    }
    const [key, value] = [selector.slice(0, at), selector.slice(at + 1)];
    return [...this.seeded.values()].filter((c) => (c.labels ?? {})[key] === value).map((c) => c.name).sort();
  }
}

/** `url` is under `prefix` on a segment boundary, as the host checks ("/flush" allows "/flush/all", not "/flushall"). */
function underPrefix(prefix, url) {
  if (!url.startsWith(prefix)) return false;
  const rest = url.slice(prefix.length);
  return rest === "" || prefix.endsWith("/") || rest[0] === "/" || rest[0] === "?";
}

function rule(text) {
  const at = text.trim().indexOf(" ");
  const [method, prefix] = at < 0 ? [text, ""] : [text.trim().slice(0, at), text.trim().slice(at + 1).trim()];
  if (!prefix) throw new Error(`${JSON.stringify(text)} is not "METHOD URL-PREFIX" ("GET https://runbooks.internal/api/")`);
  return [method.toUpperCase(), prefix];
}

/** A scripted HTTP answer: status, body (a string or bytes) and {headers, truncated}. */
export function response(status, body = "", { headers = {}, truncated = false } = {}) {
  return new HttpResponse({ status, body, headers, truncated });
}

/**
 * Scripted HTTP answers by "METHOD URL-PREFIX" (the longest prefix that
 * matches wins): an HttpResponse (response(200, "ok")), an HttpError to
 * throw, or a function of the request. Every request is recorded in
 * `requests` ({method, url, headers, body, secrets, text()}). `allow` is the
 * manifest's [capabilities.http] allow (null: any), `secrets` the names it
 * maps (null: any): outside them a request is denied. Allowed but not
 * scripted: failed, naming it. With dryRun an effect (not GET or HEAD) is
 * recorded and answers sent: false, status 0.
 */
export class FakeHttp {
  constructor(answers = {}, { allow = null, secrets = null, dryRun = false } = {}) {
    this.answers = Object.entries(answers ?? {}).map(([text, answer]) => [rule(text), answer]);
    this.allow = allow === null ? null : allow.map(rule);
    this.secrets = secrets === null ? null : new Set(secrets);
    this.dryRun = dryRun;
    this.requests = [];
  }
  /** The requests made, as [method, url]. */
  get calls() {
    return this.requests.map((r) => [r.method, r.url]);
  }
  request(req) {
    const body = req.body === undefined ? null : req.body;
    const recorded = { ...req, body, text: () => new TextDecoder().decode(body ?? new Uint8Array()) };
    this.requests.push(recorded);
    const { method, url } = req;
    if (this.allow !== null && !this.allow.some(([m, p]) => m === method && underPrefix(p, url))) {
      throw new HttpError("denied", `${method} ${url} is not in the manifest's [capabilities.http] allow`);
    }
    for (const name of req.secrets) {
      if (this.secrets !== null && !this.secrets.has(name)) {
        throw new HttpError("denied", `secret ${name} is not in the manifest's [capabilities.http] secrets`);
      }
    }
    if (this.dryRun && method !== "GET" && method !== "HEAD") return new HttpResponse({ sent: false, status: 0 });
    const scripted = this.answers
      .filter(([[m, p]]) => m === method && underPrefix(p, url))
      .sort(([[, a]], [[, b]]) => b.length - a.length);
    if (scripted.length === 0) throw new HttpError("failed", `the fake has no answer for ${method} ${url}: script one in http: {...}`);
    let answer = scripted[0][1];
    if (answer instanceof HttpError) throw new HttpError(answer.kind, answer.detail);
    if (typeof answer === "function") answer = answer(recorded);
    return new HttpResponse(answer);
  }
}

/** A series with these labels and one sample (what a test scripts). */
export const series = (labels, value, at = 0) => ({ labels: { ...labels }, samples: [[at, value]] });

/**
 * Scripted PromQL answers by the exact query text (range queries answer the
 * same): an array of series (series({job: "x"}, 0), or {labels, samples}),
 * one number (one series without labels), null (no series), a
 * {series, truncated} answer, or a PrometheusError to throw. Every query is
 * recorded in `calls` (["query", promql, time] or ["queryRange", promql,
 * start, end, step]); `queries` has the PromQL alone. Not scripted: failed,
 * naming it. `allowed: false` is a manifest without [capabilities.prometheus]: denied.
 */
export class FakePrometheus {
  constructor(answers = {}, { allowed = true } = {}) {
    this.answers = { ...(answers ?? {}) };
    this.allowed = allowed;
    this.calls = [];
  }
  get queries() {
    return this.calls.map((call) => call[1]);
  }
  answer(promql) {
    if (!this.allowed) throw new PrometheusError("denied", "the manifest has no [capabilities.prometheus]");
    if (!Object.hasOwn(this.answers, promql)) {
      throw new PrometheusError("failed", `the fake has no answer for ${JSON.stringify(promql)}: script one in prometheus: {...}`);
    }
    const scripted = this.answers[promql];
    if (scripted instanceof PrometheusError) throw new PrometheusError(scripted.kind, scripted.detail);
    const wit = (s) => ({ labels: Object.entries(s.labels ?? {}), samples: s.samples.map(([t, v]) => [t, v]) });
    if (scripted === null || scripted === undefined) return { series: [], truncated: false };
    if (typeof scripted === "number") return { series: [wit(series({}, scripted))], truncated: false };
    if (Array.isArray(scripted)) return { series: scripted.map(wit), truncated: false };
    return { series: scripted.series.map(wit), truncated: Boolean(scripted.truncated) };
  }
  query(promql, time) {
    this.calls.push(["query", promql, time ?? null]);
    return this.answer(promql);
  }
  queryRange(promql, start, end, step) {
    this.calls.push(["queryRange", promql, start, end, step]);
    return this.answer(promql);
  }
}

const KEY = /^[A-Za-z0-9_.:-]{1,128}$/;

/**
 * The plugin's key-value store as an object: `values` starts as given and
 * is what the plugin left at the end; `ttls` the TTL of each set (null: the
 * manifest's longest; the fake never expires a key). Every call is
 * recorded in `calls`: ["get", key], ["set", key, value, ttl], ["delete",
 * key]. The host's bounds answer denied (a key not 1 to 128 characters of
 * [A-Za-z0-9_.:-], a value over maxValueBytes, a new key past maxKeys), as
 * does every call with allowed: false. With dryRun writes are recorded, not kept.
 */
export class FakeState {
  constructor(values = {}, { maxKeys = 64, maxValueBytes = 4096, allowed = true, dryRun = false } = {}) {
    this.values = { ...(values ?? {}) };
    this.ttls = {};
    this.maxKeys = maxKeys;
    this.maxValueBytes = maxValueBytes;
    this.allowed = allowed;
    this.dryRun = dryRun;
    this.calls = [];
  }
  check(key) {
    if (!this.allowed) throw new StateError("denied", "the manifest has no [capabilities.state]");
    if (!KEY.test(key)) throw new StateError("denied", `key ${JSON.stringify(key)} is not 1 to 128 characters of [A-Za-z0-9_.:-]`);
  }
  get(key) {
    this.calls.push(["get", key]);
    this.check(key);
    return Object.hasOwn(this.values, key) ? this.values[key] : undefined;
  }
  set(key, value, ttl) {
    this.calls.push(["set", key, value, ttl]);
    this.check(key);
    if (new TextEncoder().encode(value).length > this.maxValueBytes) {
      throw new StateError("denied", `value of ${key} is over max_value_bytes (${this.maxValueBytes})`);
    }
    if (!Object.hasOwn(this.values, key) && Object.keys(this.values).length >= this.maxKeys) {
      throw new StateError("denied", `${this.maxKeys} keys are set (max_keys): delete one first`);
    }
    if (this.dryRun) return;
    this.values[key] = value;
    this.ttls[key] = ttl;
  }
  delete(key) {
    this.calls.push(["delete", key]);
    this.check(key);
    const wasSet = Object.hasOwn(this.values, key);
    if (!this.dryRun) {
      delete this.values[key];
      delete this.ttls[key];
    }
    return wasSet;
  }
}

/** The plugin's log lines, as [level, message]. */
export class LogCapture {
  constructor() {
    this.lines = [];
  }
  log(level, message) {
    this.lines.push([level, message]);
  }
  messages(level = null) {
    return this.lines.filter(([l]) => level === null || l === level).map(([, m]) => m);
  }
}

/**
 * The fakes, installed as the SDK's host until uninstall(). Besides the
 * containers' options: `http` (a FakeHttp, or its answers), `prometheus` (a
 * FakePrometheus, or its answers), `state` (a FakeState, or its starting
 * values). A capability not given is one the manifest lacks: denied.
 */
export class FakeHost {
  constructor(containers = [], options = {}) {
    const { http = null, prometheus = null, state = null, ...rest } = options;
    const dryRun = Boolean(rest.dryRun);
    this.containers = new FakeContainers(containers, rest);
    this.http = http instanceof FakeHttp ? http : new FakeHttp(http, { allow: http === null ? [] : null });
    this.prometheus = prometheus instanceof FakePrometheus ? prometheus : new FakePrometheus(prometheus, { allowed: prometheus !== null });
    this.state = state instanceof FakeState ? state : new FakeState(state, { allowed: state !== null });
    this.http.dryRun ||= dryRun;
    this.state.dryRun ||= dryRun;
    this.logs = new LogCapture();
    this.before = null;
  }
  static install(containers = [], options = {}) {
    const host = new FakeHost(containers, options);
    host.before = setHost({
      inspect: (name) => host.containers.inspect(name),
      restart: (name) => host.containers.restart(name),
      signal: (name, signal) => host.containers.signal(name, signal),
      exec: (name, argv) => host.containers.exec(name, argv),
      logs: (name, tail) => host.containers.logs(name, tail),
      listByLabel: (selector) => host.containers.listByLabel(selector),
      httpRequest: (request) => host.http.request(request),
      prometheusQuery: (promql, time) => host.prometheus.query(promql, time),
      prometheusQueryRange: (promql, start, end, step) => host.prometheus.queryRange(promql, start, end, step),
      stateGet: (key) => host.state.get(key),
      stateSet: (key, value, ttl) => host.state.set(key, value, ttl),
      stateDelete: (key) => host.state.delete(key),
      log: (level, message) => host.logs.log(level, message),
    });
    return host;
  }
  uninstall() {
    if (this.before) setHost(this.before);
    this.before = null;
  }
}

/** A firing alert with these labels. */
export const firing = (labels = {}, annotations = {}) => Alert.of(labels, "firing", annotations);
/** A resolved alert with these labels. */
export const resolved = (labels = {}, annotations = {}) => Alert.of(labels, "resolved", annotations);

/**
 * `handle` (the export plugin() made, or a plain handler) answered as the
 * host would see it: {tag: "acted"|"skipped", val}; a failure throws a
 * Failed with the message the host would record.
 */
export function run(handle, alert, config = {}) {
  return answer(handle.handler ?? handle, alert, { ...config });
}
