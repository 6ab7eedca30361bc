// restart-on-log-pattern under `node --test`, the host faked by autoheal-sdk/testing.
import { test } from "node:test";
import assert from "node:assert/strict";

import { Failed, FakeHost, container, firing, resolved, run } from "autoheal-sdk/testing";
import { DEFAULT_TAIL, handle, tailOf } from "../app.js";

/** The bundled manifest's config and allow-list. */
const CONFIG = {
  container_label: "container",
  pattern: "OutOfMemoryError|connection pool exhausted",
  tail: "200",
  min_uptime_sec: "300",
};
const ALLOWED = { allowed: ["crm-worker", "billing-worker"] };

function withHost(containers, body, options = ALLOWED) {
  const host = FakeHost.install(containers, options);
  try {
    body(host);
  } finally {
    host.uninstall();
  }
  return host;
}

const worker = (output, fields = {}) => container("crm-worker", { output, ...fields });

test("a matching line restarts the container, quoting it", () => {
  const log = [["stdout", "job 41 done"], ["stderr", "java.lang.OutOfMemoryError: Java heap space"], ["stdout", "job 42 started"]];
  const host = withHost([worker(log)], () => {
    assert.deepEqual(run(handle, firing({ container: "crm-worker" }), CONFIG), {
      tag: "acted",
      val: 'restarted crm-worker: its stderr says "java.lang.OutOfMemoryError: Java heap space"',
    });
  });
  assert.deepEqual(host.containers.restarted, ["crm-worker"]);
  assert.deepEqual(host.containers.calls.map(([call]) => call), ["logs", "inspect", "restart"]);
});

test("no matching line in the tail is a skip, saying what was read", () => {
  // The error is older than the tail of 2 lines: not read, not acted on.
  const log = [["stderr", "connection pool exhausted"], ["stdout", "ok"], ["stdout", "ok"]];
  const host = withHost([worker(log)], () => {
    assert.deepEqual(run(handle, firing({ container: "crm-worker" }), { ...CONFIG, tail: "2" }), {
      tag: "skipped",
      val: "no line of the last 2 of crm-worker's log matches /OutOfMemoryError|connection pool exhausted/",
    });
  });
  assert.deepEqual(host.containers.restarted, []);
  assert.deepEqual(host.logs.messages("info"), [
    "skipped: no line of the last 2 of crm-worker's log matches /OutOfMemoryError|connection pool exhausted/",
  ]);
});

test("a container that started recently is left alone even when its log matches", () => {
  const log = [["stderr", "connection pool exhausted"]];
  const host = withHost([worker(log, { uptimeSeconds: 30 })], () => {
    assert.deepEqual(run(handle, firing({ container: "crm-worker" }), CONFIG), {
      tag: "skipped",
      val: "crm-worker started 30s ago (min_uptime_sec = 300)",
    });
  });
  assert.deepEqual(host.containers.restarted, []);
});

test("a container the manifest does not allow is denied, and nothing restarted", () => {
  const host = withHost([container("postgres", { output: [["stderr", "OutOfMemoryError"]] })], () => {
    assert.throws(
      () => run(handle, firing({ container: "postgres" }), CONFIG),
      (e) => e instanceof Failed && e.message.startsWith("denied: container postgres"),
    );
  });
  assert.deepEqual(host.containers.restarted, []);
});

test("a bad config fails before any host call; a resolved alert does nothing", () => {
  // No FakeHost installed: a host call would fail saying "FakeHost" instead.
  const fails = (config, pattern) =>
    assert.throws(() => run(handle, firing({ container: "crm-worker" }), config), (e) => e instanceof Failed && pattern.test(e.message));
  fails({}, /`pattern` is required/);
  fails({ pattern: "(" }, /`pattern` is not a regular expression/);
  fails({ pattern: "x", tail: "0" }, /`tail`/);
  fails({ pattern: "x", tail: "lots" }, /`tail`/);
  fails({ pattern: "x", min_uptime_sec: "5m" }, /min_uptime_sec/);
  fails({ pattern: "x", container: "a", container_label: "b" }, /mutually exclusive/);
  assert.throws(() => run(handle, firing({}), { pattern: "x" }), /has no label "container"/);
  assert.deepEqual(run(handle, resolved({ container: "crm-worker" }), CONFIG), {
    tag: "skipped",
    val: "nothing to do: alert is resolved",
  });
  assert.equal(tailOf({}), DEFAULT_TAIL);
});
