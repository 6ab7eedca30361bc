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

import { Alert, ContainerError, Failed, answer, setHost } from "./core.js";

export { Failed };

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

/** Both fakes, installed as the SDK's host until uninstall(). */
export class FakeHost {
  constructor(containers = [], options = {}) {
    this.containers = new FakeContainers(containers, options);
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
