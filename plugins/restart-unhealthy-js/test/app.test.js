// restart-unhealthy-js under `node --test`, the host faked by autoheal-sdk/testing.
import { test } from "node:test";
import assert from "node:assert/strict";

import { FakeHost, container, firing, run } from "autoheal-sdk/testing";
import { handle } from "../app.js";

test("restarts only the unhealthy container", () => {
  const host = FakeHost.install([container("sick", { health: "unhealthy" }), container("fine", { health: "healthy" })]);
  try {
    assert.deepEqual(run(handle, firing({ container: "sick,fine" })), { tag: "acted", val: "restarted sick; skipped: fine is healthy" });
    assert.deepEqual(host.containers.restarted, ["sick"]);
  } finally {
    host.uninstall();
  }
});

test("a young container is left alone", () => {
  const host = FakeHost.install([container("sick", { health: "unhealthy", uptimeSeconds: 5 })]);
  try {
    const answer = run(handle, firing({ container: "sick" }), { min_uptime_sec: "60" });
    assert.deepEqual(answer, { tag: "skipped", val: "sick started 5s ago (min_uptime_sec = 60)" });
    assert.deepEqual(host.containers.restarted, []);
  } finally {
    host.uninstall();
  }
});
