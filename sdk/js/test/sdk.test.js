// The JavaScript SDK, natively under `node --test`, with its own fakes.
import { test } from "node:test";
import assert from "node:assert/strict";

import {
  ContainerError,
  checkUptime,
  exec,
  info,
  inspect,
  listByLabel,
  logs,
  mapStack,
  minUptimeSec,
  plugin,
  restart,
  signal,
  skip,
  setHost,
} from "autoheal-sdk";
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

const denied = (e) => e instanceof ContainerError && e.kind === "denied";

/** Runs `body` with a FakeHost of `containers` and `options` installed. */
function withHost(containers, options, body) {
  const host = FakeHost.install(containers, options);
  try {
    body(host);
  } finally {
    host.uninstall();
  }
  return host;
}

test("the new calls say what to use outside a fake host", () => {
  for (const call of [() => signal("web", "HUP"), () => exec("web", ["true"]), () => logs("web"), () => listByLabel("a=b")]) {
    assert.throws(call, /FakeHost/);
  }
});

test("signals are checked against the allow-list and recorded", () => {
  const host = withHost([container("web")], { signals: ["HUP"] }, () => {
    signal("web", "SIGHUP");
    assert.throws(() => signal("web", "KILL"), denied);
  });
  assert.deepEqual(host.containers.signalled, [["web", "HUP"]]);
  assert.deepEqual(host.containers.calls, [["signal", "web"], ["signal", "web"]]);
});

test("exec answers what was scripted and refuses what is not allowed", () => {
  const cache = container("cache", { execs: { "redis-cli FLUSHDB": { exitCode: 1, stderr: "READONLY" } } });
  const host = withHost([cache], { commands: [["redis-cli", "FLUSHDB"], ["true"]] }, () => {
    const out = exec("cache", ["redis-cli", "FLUSHDB"]);
    assert.deepEqual([out.exitCode, out.stderr, out.success], [1, "READONLY", false]);
    assert.equal(exec("cache", ["true"]).success, true, "unscripted: exit 0");
    assert.throws(() => exec("cache", ["redis-cli", "FLUSHALL"]), denied);
    assert.throws(() => exec("cache", "redis-cli FLUSHDB"), /array of words/);
  });
  assert.deepEqual(host.containers.executed, [["cache", ["redis-cli", "FLUSHDB"]], ["cache", ["true"]]]);
});

test("dry-run records effects without performing them", () => {
  const host = withHost([container("cache")], { dryRun: true }, () => {
    const out = exec("cache", ["redis-cli", "FLUSHDB"]);
    assert.deepEqual([out.ran, out.exitCode, out.success], [false, null, false]);
    restart("cache");
    assert.equal(inspect("cache").restartCount, 0);
  });
  assert.deepEqual(host.containers.restarted, ["cache"]);
  assert.equal(host.containers.executed.length, 1);
});

test("logs answer the last lines, oldest first", () => {
  const api = container("api", { output: [["stdout", "one"], ["stderr", "ERROR two"], ["stdout", "three"]] });
  const host = withHost([api], {}, () => {
    assert.deepEqual(logs("api", 2), {
      lines: [{ source: "stderr", text: "ERROR two" }, { source: "stdout", text: "three" }],
      truncated: false,
    });
    assert.equal(logs("api").lines.length, 3);
    assert.deepEqual(logs("api", 0).lines, []);
    assert.throws(() => logs("api", -1), RangeError);
  });
  assert.deepEqual(host.logs.lines, [], "the plugin's log capture is apart from container logs");
});

test("labels select containers and allow them", () => {
  const app = { "com.docker.compose.service": "app" };
  withHost(
    [container("app-2", { labels: app }), container("app-1", { labels: app }), container("db", { labels: { "com.docker.compose.service": "db" } })],
    { allowed: ["label:com.docker.compose.service=app"] },
    () => {
      assert.deepEqual(listByLabel("com.docker.compose.service=app"), ["app-1", "app-2"]);
      assert.deepEqual(inspect("app-1").labels, app);
      restart("app-2");
      assert.throws(() => listByLabel("com.docker.compose.service=db"), denied);
      assert.throws(() => restart("db"), denied);
      assert.throws(() => listByLabel("com.docker.compose.service"), denied);
    },
  );
});

test("host answers in the WIT's shapes are converted: s64 exit codes, label pairs, error variants", () => {
  const before = setHost({
    inspect: () => ({ name: "x", state: "running", startedAt: "", uptimeSeconds: 5n, restartCount: 1, health: undefined, labels: [["k", "v"]] }),
    exec: () => ({ ran: true, exitCode: 0n, stdout: "ok", stderr: "", truncated: false, timedOut: false }),
    logs: () => { throw { payload: { tag: "not-found", val: "x" } }; },
    listByLabel: () => { throw { payload: { tag: "denied", val: "selector k=v is not allowed" } }; },
  });
  try {
    assert.deepEqual(inspect("x").labels, { k: "v" });
    assert.equal(inspect("x").uptimeSeconds, 5);
    assert.equal(exec("x", ["true"]).exitCode, 0);
    assert.equal(exec("x", ["true"]).success, true);
    assert.throws(() => logs("x", 10), (e) => e.kind === "not_found" && e.message === "container x not found");
    assert.throws(() => listByLabel("k=v"), (e) => denied(e) && /denied: selector/.test(e.message));
  } finally {
    setHost(before);
  }
});
