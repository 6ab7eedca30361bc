// The http, prometheus and state wrappers of the JavaScript SDK and their fakes.
import { test } from "node:test";
import assert from "node:assert/strict";

import { HttpError, PluginError, PrometheusError, StateError, http, plugin, prometheus, setHost, skip, state } from "autoheal-sdk";
import { Failed, FakeHost, FakeHttp, FakePrometheus, FakeState, container, firing, response, run, series } from "autoheal-sdk/testing";

const RUNBOOK = "https://runbooks.internal/api/";
const kind = (ErrorClass, wanted) => (e) => e instanceof ErrorClass && e.kind === wanted;

/** Runs `body` with a FakeHost of `options` installed; returns the host. */
function withHost(options, body, containers = []) {
  const host = FakeHost.install(containers, options);
  try {
    body(host);
  } finally {
    host.uninstall();
  }
  return host;
}

test("outside a fake host the calls say what to use", () => {
  for (const call of [
    () => http.get(RUNBOOK),
    () => prometheus.query("up"),
    () => prometheus.queryRange("up", 0, 60, 15),
    () => state.get("k"),
    () => state.set("k", "v"),
    () => state.delete("k"),
  ]) {
    assert.throws(call, /FakeHost/);
  }
});

test("http answers what was scripted by method and longest prefix, and records it", () => {
  const answers = {
    [`GET ${RUNBOOK}`]: response(200, '{"ok":true}', { headers: { "Content-Type": "application/json" } }),
    [`GET ${RUNBOOK}flags`]: response(404, "no such flag"),
  };
  const host = withHost({ http: answers }, () => {
    const answer = http.get(`${RUNBOOK}status?verbose=1`, { headers: { Accept: "application/json" }, secrets: "RUNBOOK_TOKEN" });
    assert.deepEqual([answer.status, answer.ok, answer.json(), answer.truncated, answer.sent], [200, true, { ok: true }, false, true]);
    assert.equal(answer.header("content-type"), "application/json");
    assert.ok(answer.body instanceof Uint8Array);
    const missing = http.get(`${RUNBOOK}flags/dark-mode`);
    assert.deepEqual([missing.status, missing.ok, missing.text()], [404, false, "no such flag"]);
    assert.throws(() => http.request("delete", `${RUNBOOK}x`), (e) => kind(HttpError, "failed")(e) && e.message.includes(`DELETE ${RUNBOOK}x`));
  });
  assert.deepEqual(host.http.calls, [["GET", `${RUNBOOK}status?verbose=1`], ["GET", `${RUNBOOK}flags/dark-mode`], ["DELETE", `${RUNBOOK}x`]]);
  const first = host.http.requests[0];
  assert.deepEqual([first.headers, first.body, first.secrets], [[["Accept", "application/json"]], null, ["RUNBOOK_TOKEN"]]);
});

test("http.post sends JSON or text, and a scripted function sees the request", () => {
  const echo = (request) => response(201, request.body, { headers: [["X-Secrets", request.secrets.join(",")]] });
  const host = withHost({ http: { "POST http://127.0.0.1:8080/flush": echo } }, () => {
    const answer = http.post("http://127.0.0.1:8080/flush", { json: { cache: "crm" }, secrets: ["TOKEN"] });
    assert.deepEqual([answer.status, answer.json(), answer.header("x-secrets")], [201, { cache: "crm" }, "TOKEN"]);
    assert.deepEqual([...http.post("http://127.0.0.1:8080/flush/all", { body: "é" }).body], [0xc3, 0xa9]);
    assert.throws(() => http.post("http://127.0.0.1:8080/flush", { body: "x", json: {} }), /body or json/);
  });
  assert.deepEqual(host.http.requests[0].headers, [["Content-Type", "application/json"]]);
  assert.equal(host.http.requests[0].text(), '{"cache":"crm"}');
});

test("http outside the allow-list or with a secret not mapped is denied", () => {
  const fake = new FakeHttp(
    { [`GET ${RUNBOOK}`]: response(200), "POST http://127.0.0.1:8080/flush": response(204) },
    { allow: [`GET ${RUNBOOK}`, "POST http://127.0.0.1:8080/flush"], secrets: ["RUNBOOK_TOKEN"] },
  );
  const host = withHost({ http: fake }, () => {
    assert.equal(http.get(`${RUNBOOK}a`, { secrets: ["RUNBOOK_TOKEN"] }).status, 200);
    for (const [method, url] of [["POST", `${RUNBOOK}a`], ["POST", "http://127.0.0.1:8080/flushall"], ["GET", "https://evil.example/api/"]]) {
      assert.throws(() => http.request(method, url), kind(HttpError, "denied"), url);
    }
    assert.throws(() => http.get(RUNBOOK, { secrets: ["DB_PASSWORD"] }), (e) => kind(HttpError, "denied")(e) && /^denied: secret DB_PASSWORD/.test(e.message));
  });
  assert.equal(host.http.calls.length, 5, "denied calls are recorded too");
});

test("a fake host without http denies it; errors can be scripted", () => {
  withHost({}, () => assert.throws(() => http.get(RUNBOOK), kind(HttpError, "denied")));
  withHost({ http: { [`GET ${RUNBOOK}`]: new HttpError("timeout", "no answer within 5s") } }, () => {
    assert.throws(() => http.get(RUNBOOK), (e) => kind(HttpError, "timeout")(e) && e.message === "timeout: no answer within 5s");
  });
});

test("in dry-run an http effect is recorded, not sent, and a read is performed", () => {
  const answers = { [`GET ${RUNBOOK}`]: response(200, "up"), [`POST ${RUNBOOK}`]: response(200, "done") };
  let effect;
  const host = withHost({ http: answers, dryRun: true }, () => {
    assert.equal(http.get(RUNBOOK).text(), "up");
    effect = http.post(`${RUNBOOK}flush`);
  });
  assert.deepEqual([effect.sent, effect.status, effect.body.length, effect.ok], [false, 0, 0, false]);
  assert.deepEqual(host.http.calls, [["GET", RUNBOOK], ["POST", `${RUNBOOK}flush`]]);
});

test("prometheus answers scripted queries and the helpers read them", () => {
  const down = [series({ instance: "a" }, 0), series({ instance: "b" }, 1)];
  const answers = { probe_success: down, "probe_success == 0": [down[0]], "sum(rate(errors[5m]))": 0.25, absent_metric: null };
  const host = withHost({ prometheus: answers }, () => {
    const answer = prometheus.query("probe_success", 1700000000);
    assert.deepEqual(answer.series.map((s) => s.labels.instance), ["a", "b"]);
    assert.deepEqual([answer.value, answer.truncated], [0, false]);
    assert.equal(prometheus.anyBelow("probe_success", 1), true);
    assert.equal(prometheus.anyAbove("probe_success", 1), false);
    assert.equal(prometheus.stillFailing("probe_success == 0"), true);
    assert.equal(prometheus.stillFailing("absent_metric"), false);
    assert.equal(prometheus.value("sum(rate(errors[5m]))"), 0.25);
    assert.equal(prometheus.value("absent_metric"), null);
    assert.equal(prometheus.anyAbove("absent_metric", 0), false, "no series is not above");
    assert.throws(() => prometheus.value("probe_success"), (e) => e instanceof PluginError && /2 series came back/.test(e.message));
    assert.throws(() => prometheus.query("up"), (e) => kind(PrometheusError, "failed")(e) && e.detail.includes('"up"'));
  });
  assert.deepEqual(host.prometheus.calls[0], ["query", "probe_success", 1700000000]);
  assert.equal(host.prometheus.queries.at(-1), "up");
});

test("prometheus range queries and isFiring", () => {
  const ramp = { labels: { job: "api" }, samples: [[0, 1], [60, 2], [120, 7]] };
  const alert = 'ALERTS{alertname="CrmDown",alertstate="firing",instance="a\\"b"}';
  const host = withHost({ prometheus: { errors: [ramp], [alert]: [series({}, 1)] } }, () => {
    const answer = prometheus.queryRange("errors", 0, 120, 60);
    assert.deepEqual(answer.series[0].samples, [[0, 1], [60, 2], [120, 7]]);
    assert.equal(answer.value, 7, "the newest sample");
    assert.throws(() => prometheus.queryRange("errors", 0, 120, 0), RangeError);
    assert.equal(prometheus.isFiring("CrmDown", { instance: 'a"b' }), true);
  });
  assert.deepEqual(host.prometheus.calls, [["queryRange", "errors", 0, 120, 60], ["query", alert, null]]);
});

test("prometheus denied and scripted errors", () => {
  withHost({}, () => assert.throws(() => prometheus.query("up"), kind(PrometheusError, "denied")));
  const fake = new FakePrometheus({ "rate(": new PrometheusError("bad_query", "unexpected end of input") });
  withHost({ prometheus: fake }, () => {
    assert.throws(() => prometheus.stillFailing("rate("), (e) => kind(PrometheusError, "bad_query")(e) && e.message === "bad query: unexpected end of input");
  });
});

test("state starts from an object and is read at the end", () => {
  const host = withHost({ state: { "tries:crm": "1", old: "x" } }, () => {
    const tries = Number(state.get("tries:crm") ?? 0);
    state.set("tries:crm", String(tries + 1), 3600);
    assert.equal(state.get("never"), null);
    assert.equal(state.delete("old"), true);
    assert.equal(state.delete("old"), false);
    assert.throws(() => state.set("tries:crm", 3), /values are strings/);
    assert.throws(() => state.set("k", "v", -1), RangeError);
  });
  assert.deepEqual(host.state.values, { "tries:crm": "2" });
  assert.deepEqual(host.state.ttls, { "tries:crm": 3600 });
  assert.deepEqual(host.state.calls, [["get", "tries:crm"], ["set", "tries:crm", "2", 3600], ["get", "never"], ["delete", "old"], ["delete", "old"]]);
});

test("state bounds and absence are denied, and dry-run keeps nothing", () => {
  const fake = new FakeState({ a: "1" }, { maxKeys: 1, maxValueBytes: 4 });
  withHost({ state: fake }, () => {
    for (const call of [() => state.set("b", "2"), () => state.set("a", "12345"), () => state.get("no spaces")]) {
      assert.throws(call, kind(StateError, "denied"));
    }
    state.set("a", "1234");
  });
  assert.deepEqual(fake.values, { a: "1234" });
  withHost({}, () => assert.throws(() => state.get("a"), /no \[capabilities.state\]/));
  const host = withHost({ state: { a: "1" }, dryRun: true }, () => {
    state.set("a", "2");
    assert.equal(state.delete("a"), true);
  });
  assert.deepEqual(host.state.values, { a: "1" });
  assert.equal(host.state.calls.length, 2);
});

const QUERY = 'probe_success{job="crm"} == 0';
/** Checks, acts, remembers: what a plugin of this issue does. */
const handle = plugin(() => {
  if (!prometheus.stillFailing(QUERY)) return skip("recovered by itself");
  const tries = Number(state.get("tries") ?? 0);
  http.post(`${RUNBOOK}flush`, { json: { tries }, secrets: ["RUNBOOK_TOKEN"] });
  state.set("tries", String(tries + 1));
  return `flushed (try ${tries + 1})`;
});

test("a plugin checks, acts and remembers; a host error fails it with its message", () => {
  const options = { http: { [`POST ${RUNBOOK}`]: response(200) }, prometheus: { [QUERY]: [series({ job: "crm" }, 0)] }, state: {} };
  const host = withHost(options, () => {
    assert.deepEqual(run(handle, firing({ alertname: "CrmDown" })), { tag: "acted", val: "flushed (try 1)" });
  }, [container("crm")]);
  assert.deepEqual(host.state.values, { tries: "1" });
  assert.deepEqual(host.http.requests[0].secrets, ["RUNBOOK_TOKEN"]);
  withHost({ prometheus: { [QUERY]: null } }, () => {
    assert.deepEqual(run(handle, firing()), { tag: "skipped", val: "recovered by itself" });
  });
  withHost({ prometheus: { [QUERY]: 0 }, state: {} }, () => {
    assert.throws(() => run(handle, firing()), (e) => e instanceof Failed && e.message.startsWith(`denied: POST ${RUNBOOK}flush`) && !e.message.includes("\n"));
  });
});

test("host answers in the WIT's shapes are converted: bytes, pairs, error variants", () => {
  const sent = [];
  const store = new Map();
  const before = setHost({
    httpRequest: (request) => {
      sent.push(request);
      if (request.url.includes("slow")) throw { payload: { tag: "timeout", val: "no answer within 5s" } };
      return { sent: true, status: 503, headers: [["Retry-After", "5"]], body: new Uint8Array([98, 117, 115, 121]), truncated: true };
    },
    prometheusQuery: (promql) => {
      if (promql === "rate(") throw { payload: { tag: "bad-query", val: "parse error" } };
      return { series: [{ labels: [["job", "x"]], samples: [[1, 2]] }], truncated: true };
    },
    prometheusQueryRange: () => ({ series: [], truncated: false }),
    stateGet: (key) => store.get(key)?.[0],
    stateSet: (key, value, ttl) => {
      if (value.length > 3) throw { payload: { tag: "denied", val: "value over max_value_bytes" } };
      store.set(key, [value, ttl]);
    },
    stateDelete: (key) => store.delete(key),
  });
  try {
    const answer = http.post(RUNBOOK, { body: "x", headers: { A: "1" }, secrets: ["T"] });
    assert.deepEqual([answer.status, answer.ok, answer.text(), answer.truncated, answer.header("retry-after")], [503, false, "busy", true, "5"]);
    assert.deepEqual([sent[0].method, [...sent[0].body], sent[0].headers, sent[0].secrets], ["POST", [120], [["A", "1"]], ["T"]]);
    assert.equal(http.get(RUNBOOK).status, 503);
    assert.equal(sent[1].body, undefined, "no body: the WIT's none");
    assert.throws(() => http.get(`${RUNBOOK}slow`), kind(HttpError, "timeout"));
    const found = prometheus.query("up");
    assert.deepEqual([found.series[0].labels, found.series[0].samples, found.value, found.truncated], [{ job: "x" }, [[1, 2]], 2, true]);
    assert.deepEqual(prometheus.queryRange("up", 0, 1, 1).series, []);
    assert.throws(() => prometheus.query("rate("), kind(PrometheusError, "bad_query"));
    state.set("k", "v", 60);
    assert.deepEqual([state.get("k"), store.get("k")], ["v", ["v", 60]]);
    assert.throws(() => state.set("k", "long"), kind(StateError, "denied"));
    assert.equal(state.delete("k"), true);
    assert.equal(state.get("k"), null, "the WIT's none");
  } finally {
    setHost(before);
  }
});
