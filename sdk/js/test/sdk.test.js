// The JavaScript SDK, natively under `node --test`, with its own fakes.
import { test } from "node:test";
import assert from "node:assert/strict";

import { ContainerError, checkUptime, info, inspect, mapStack, minUptimeSec, plugin, restart, skip } from "autoheal-sdk";
import { Failed, FakeHost, container, firing, resolved, run } from "autoheal-sdk/testing";

const handle = plugin((alert) => {
  if (!alert.isFiring) return skip("resolved");
  const name = alert.requireLabel("container");
  restart(name);
  return `restarted ${name}`;
});

test("outside a fake host a call says what to use", () => {
  assert.throws(() => restart("web"), /FakeHost/);
});

test("the fake containers answer and record each call", () => {
  const host = FakeHost.install([container("web", { uptimeSeconds: 10, health: "unhealthy" })]);
  try {
    assert.equal(inspect("web").health, "unhealthy");
    restart("web");
    assert.equal(inspect("web").uptimeSeconds, 0);
    assert.throws(() => inspect("db"), (e) => e instanceof ContainerError && e.kind === "not_found");
    assert.deepEqual(host.containers.calls, [["inspect", "web"], ["restart", "web"], ["inspect", "web"], ["inspect", "db"]]);
    assert.deepEqual(host.containers.restarted, ["web"]);
  } finally {
    host.uninstall();
  }
});

test("outside the allow-list is denied; a failing engine is a runtime error, logged", () => {
  const host = FakeHost.install([container("web"), container("db")], { allowed: ["web"], failing: { web: "engine down" } });
  try {
    assert.throws(() => restart("db"), (e) => e.kind === "denied");
    assert.equal(checkUptime("web", 60), null);
    info("done");
    assert.deepEqual(host.logs.messages("info"), ["done"]);
    assert.match(host.logs.messages("warn")[0], /engine down/);
  } finally {
    host.uninstall();
  }
});

test("run answers as the host would", () => {
  const host = FakeHost.install([container("web")]);
  try {
    assert.deepEqual(run(handle, firing({ container: "web" })), { tag: "acted", val: "restarted web" });
    assert.deepEqual(run(handle, resolved({ container: "web" })), { tag: "skipped", val: "resolved" });
    assert.throws(() => run(handle, firing({ alertname: "Down" })), (e) => e instanceof Failed && /has no label "container"/.test(e.message));
  } finally {
    host.uninstall();
  }
});

test("an async handler fails, saying plugins answer synchronously", () => {
  assert.throws(() => run(async () => "later", firing()), /answer synchronously/);
});

test("a stack of the bundle is mapped back to app.js", () => {
  // "AAAA;AACA,IAAI": line 1 col 0 → app.js 1:1; line 2 col 0 → app.js 2:1, col 4 → 2:5.
  globalThis.__autohealSourceMap = { sources: ["app.js"], mappings: "AAAA;AACA,IAAI" };
  try {
    assert.equal(mapStack("handle@source.js:2:7\n"), "handle@app.js:2:5\n");
  } finally {
    delete globalThis.__autohealSourceMap;
  }
});

test("min_uptime_sec refuses a bad value", () => {
  assert.equal(minUptimeSec({}), 60);
  assert.throws(() => minUptimeSec({ min_uptime_sec: "1m" }), /whole number/);
});
