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
// not_found, one outside `allowed` denied (the manifest's allow-list), one
// in `failing` a runtime error; a restart sets it running with uptime 0.

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
    ...fields,
  };
}

/** Seeded containers: inspect and restart answer from them and are recorded in `calls` as [capability, name]. */
export class FakeContainers {
  constructor(containers = [], { allowed = null, failing = {} } = {}) {
    this.seeded = new Map(containers.map((c) => [c.name, { ...c }]));
    this.allowed = allowed === null ? null : new Set(allowed);
    this.failing = { ...failing };
    this.calls = [];
  }
  get restarted() {
    return this.calls.filter(([call]) => call === "restart").map(([, name]) => name);
  }
  find(call, name) {
    this.calls.push([call, name]);
    if (this.allowed !== null && !this.allowed.has(name)) {
      throw new ContainerError("denied", `container ${name} is not in the manifest's containers`);
    }
    if (name in this.failing) throw new ContainerError("runtime", this.failing[name]);
    const found = this.seeded.get(name);
    if (!found) throw new ContainerError("not_found", `container ${name} not found`);
    return found;
  }
  inspect(name) {
    return { ...this.find("inspect", name) };
  }
  restart(name) {
    const found = this.find("restart", name);
    Object.assign(found, { state: "running", uptimeSeconds: 0, restartCount: found.restartCount + 1 });
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
