"""The http, prometheus and state wrappers of the Python SDK and their fakes."""

from types import SimpleNamespace

import pytest

import autoheal_sdk
from autoheal_sdk import (
    Answer,
    HttpError,
    PluginError,
    PrometheusError,
    Response,
    Series,
    StateError,
    http,
    plugin,
    prometheus,
    skip,
    state,
)
from autoheal_sdk.testing import (
    Container,
    Failed,
    FakeHost,
    FakeHttp,
    FakePrometheus,
    FakeState,
    Skipped,
    firing,
    run,
)

RUNBOOK = "https://runbooks.internal/api/"


def test_outside_a_fake_host_the_calls_say_what_to_use():
    for call in (
        lambda: http.get(RUNBOOK),
        lambda: prometheus.query("up"),
        lambda: prometheus.query_range("up", 0, 60, 15),
        lambda: state.get("k"),
        lambda: state.set("k", "v"),
        lambda: state.delete("k"),
    ):
        with pytest.raises(RuntimeError, match="FakeHost"):
            call()


def test_http_answers_what_was_scripted_by_method_and_longest_prefix_and_records_it():
    answers = {
        f"GET {RUNBOOK}": Response(200, '{"ok": true}', headers={"Content-Type": "application/json"}),
        f"GET {RUNBOOK}flags": Response(404, "no such flag"),
    }
    with FakeHost(http=answers) as host:
        answer = http.get(RUNBOOK + "status?verbose=1", headers={"Accept": "application/json"}, secrets="RUNBOOK_TOKEN")
        assert (answer.status, answer.ok, answer.json(), answer.truncated, answer.sent) == (200, True, {"ok": True}, False, True)
        assert answer.body == b'{"ok": true}' and answer.header("content-type") == "application/json"
        missing = http.get(RUNBOOK + "flags/dark-mode")
        assert (missing.status, missing.ok, missing.text) == (404, False, "no such flag")
        with pytest.raises(HttpError) as unscripted:
            http.request("delete", RUNBOOK + "x")
    assert unscripted.value.kind == "failed" and "DELETE https://runbooks.internal/api/x" in str(unscripted.value)
    assert host.http.calls == [
        ("GET", RUNBOOK + "status?verbose=1"),
        ("GET", RUNBOOK + "flags/dark-mode"),
        ("DELETE", RUNBOOK + "x"),
    ]
    first = host.http.requests[0]
    assert (first.headers, first.body, first.secrets) == ([("Accept", "application/json")], None, ["RUNBOOK_TOKEN"])


def test_http_post_sends_json_or_text_and_a_scripted_function_sees_the_request():
    def echo(request):
        return Response(201, request.body, headers=[("X-Secrets", ",".join(request.secrets))])

    with FakeHost(http={"POST http://127.0.0.1:8080/flush": echo}) as host:
        answer = http.post("http://127.0.0.1:8080/flush", json={"cache": "crm"}, secrets=["TOKEN"])
        assert (answer.status, answer.json(), answer.header("x-secrets")) == (201, {"cache": "crm"}, "TOKEN")
        assert http.post("http://127.0.0.1:8080/flush/all", body="é").body == "é".encode()
        with pytest.raises(TypeError, match="body or json"):
            http.post("http://127.0.0.1:8080/flush", body="x", json={})
    assert host.http.requests[0].headers == [("Content-Type", "application/json")]
    assert host.http.requests[0].text == '{"cache": "crm"}'


def test_http_outside_the_allow_list_or_with_a_secret_not_mapped_is_denied():
    fake = FakeHttp(
        {f"GET {RUNBOOK}": Response(200), "POST http://127.0.0.1:8080/flush": Response(204)},
        allow=[f"GET {RUNBOOK}", "POST http://127.0.0.1:8080/flush"],
        secrets=["RUNBOOK_TOKEN"],
    )
    with FakeHost(http=fake) as host:
        assert http.get(RUNBOOK + "a", secrets=["RUNBOOK_TOKEN"]).status == 200
        for method, url in (
            ("POST", RUNBOOK + "a"),  # the method is not allowed
            ("POST", "http://127.0.0.1:8080/flushall"),  # not on a segment boundary
            ("GET", "https://evil.example/api/"),
        ):
            with pytest.raises(HttpError) as denied:
                http.request(method, url)
            assert denied.value.kind == "denied", url
        with pytest.raises(HttpError, match="secret DB_PASSWORD") as secret:
            http.get(RUNBOOK, secrets=["DB_PASSWORD"])
    assert secret.value.kind == "denied" and str(secret.value).startswith("denied: ")
    assert len(host.http.calls) == 5, "denied calls are recorded too"


def test_a_fake_host_without_http_denies_it_and_errors_can_be_scripted():
    with FakeHost():
        with pytest.raises(HttpError) as absent:
            http.get(RUNBOOK)
    assert absent.value.kind == "denied"
    with FakeHost(http={f"GET {RUNBOOK}": HttpError("timeout", "no answer within 5s")}):
        with pytest.raises(HttpError) as slow:
            http.get(RUNBOOK)
    assert (slow.value.kind, str(slow.value)) == ("timeout", "timeout: no answer within 5s")


def test_in_dry_run_an_http_effect_is_recorded_not_sent_and_a_read_is_performed():
    answers = {f"GET {RUNBOOK}": Response(200, "up"), f"POST {RUNBOOK}": Response(200, "done")}
    with FakeHost(http=answers, dry_run=True) as host:
        assert http.get(RUNBOOK).text == "up"
        effect = http.post(RUNBOOK + "flush")
    assert (effect.sent, effect.status, effect.body, effect.ok) == (False, 0, b"", False)
    assert host.http.calls == [("GET", RUNBOOK), ("POST", RUNBOOK + "flush")]


def test_prometheus_answers_scripted_queries_and_the_helpers_read_them():
    down = [Series.sample({"instance": "a"}, 0.0), Series.sample({"instance": "b"}, 1.0)]
    answers = {
        "probe_success": down,
        "probe_success == 0": [down[0]],
        "sum(rate(errors[5m]))": 0.25,
        "absent_metric": None,
    }
    with FakeHost(prometheus=answers) as host:
        answer = prometheus.query("probe_success", time=1700000000)
        assert [s.label("instance") for s in answer.series] == ["a", "b"] and not answer.truncated
        assert answer.value == 0.0
        assert prometheus.any_below("probe_success", 1)
        assert not prometheus.any_above("probe_success", 1)
        assert prometheus.still_failing("probe_success == 0")
        assert not prometheus.still_failing("absent_metric")
        assert prometheus.value("sum(rate(errors[5m]))") == 0.25
        assert prometheus.value("absent_metric") is None
        assert prometheus.any_above("sum(rate(errors[5m]))", 0.05)
        assert not prometheus.any_above("absent_metric", 0), "no series is not above"
        with pytest.raises(PluginError, match="2 series came back"):
            prometheus.value("probe_success")
        with pytest.raises(PrometheusError) as unscripted:
            prometheus.query("up")
    assert unscripted.value.kind == "failed" and "'up'" in unscripted.value.message
    assert host.prometheus.calls[0] == ("query", "probe_success", 1700000000.0)
    assert host.prometheus.queries[-1] == "up"


def test_prometheus_range_queries_and_is_firing():
    ramp = Series({"job": "api"}, [(0.0, 1.0), (60.0, 2.0), (120.0, 7.0)])
    firing_alert = 'ALERTS{alertname="CrmDown",alertstate="firing",instance="a\\"b"}'
    with FakeHost(prometheus={"errors": [ramp], firing_alert: [Series.sample({}, 1)]}) as host:
        answer = prometheus.query_range("errors", 0, 120, 60)
        assert answer.series[0].samples == [(0.0, 1.0), (60.0, 2.0), (120.0, 7.0)]
        assert answer.value == 7.0, "the newest sample"
        with pytest.raises(ValueError, match="step"):
            prometheus.query_range("errors", 0, 120, 0)
        assert prometheus.is_firing("CrmDown", {"instance": 'a"b'})
    assert host.prometheus.calls == [("query_range", "errors", 0.0, 120.0, 60.0), ("query", firing_alert, None)]


def test_prometheus_denied_and_scripted_errors():
    with FakeHost():
        with pytest.raises(PrometheusError) as absent:
            prometheus.query("up")
    assert absent.value.kind == "denied"
    fake = FakePrometheus({"rate(": PrometheusError("bad_query", "unexpected end of input")})
    with FakeHost(prometheus=fake):
        with pytest.raises(PrometheusError) as bad:
            prometheus.still_failing("rate(")
    assert (bad.value.kind, str(bad.value)) == ("bad_query", "bad query: unexpected end of input")


def test_state_starts_from_a_dict_and_is_read_at_the_end():
    with FakeHost(state={"tries:crm": "1", "old": "x"}) as host:
        tries = int(state.get("tries:crm") or 0)
        state.set("tries:crm", str(tries + 1), ttl_seconds=3600)
        assert state.get("never") is None
        assert state.delete("old") is True
        assert state.delete("old") is False
        with pytest.raises(TypeError, match="values are text"):
            state.set("tries:crm", 3)
        with pytest.raises(ValueError, match="ttl_seconds"):
            state.set("k", "v", ttl_seconds=-1)
    assert host.state.values == {"tries:crm": "2"}
    assert host.state.ttls == {"tries:crm": 3600}
    assert host.state.calls == [
        ("get", "tries:crm"),
        ("set", "tries:crm", "2", 3600),
        ("get", "never"),
        ("delete", "old"),
        ("delete", "old"),
    ]


def test_state_bounds_and_absence_are_denied_and_dry_run_keeps_nothing():
    fake = FakeState({"a": "1"}, max_keys=1, max_value_bytes=4)
    with FakeHost(state=fake):
        for call in (lambda: state.set("b", "2"), lambda: state.set("a", "12345"), lambda: state.get("no spaces")):
            with pytest.raises(StateError) as denied:
                call()
            assert denied.value.kind == "denied"
        state.set("a", "1234")
    assert fake.values == {"a": "1234"}
    with FakeHost():
        with pytest.raises(StateError, match="no \\[capabilities.state\\]"):
            state.get("a")
    with FakeHost(state={"a": "1"}, dry_run=True) as host:
        state.set("a", "2")
        assert state.delete("a") is True
    assert host.state.values == {"a": "1"} and len(host.state.calls) == 2


def handle(alert, config):
    """Checks, acts, remembers: what a plugin of this issue does."""
    if not prometheus.still_failing('probe_success{job="crm"} == 0'):
        return skip("recovered by itself")
    tries = int(state.get("tries") or 0)
    http.post(RUNBOOK + "flush", json={"tries": tries}, secrets=["RUNBOOK_TOKEN"])
    state.set("tries", str(tries + 1))
    return f"flushed (try {tries + 1})"


def test_a_plugin_checks_acts_and_remembers_and_a_host_error_fails_it_with_its_message():
    query = 'probe_success{job="crm"} == 0'
    with FakeHost(
        Container("crm"),
        http={f"POST {RUNBOOK}": Response(200)},
        prometheus={query: [Series.sample({"job": "crm"}, 0)]},
        state={},
    ) as host:
        assert run(plugin(handle), firing(alertname="CrmDown")) == "flushed (try 1)"
    assert host.state.values == {"tries": "1"} and host.http.requests[0].secrets == ["RUNBOOK_TOKEN"]
    with FakeHost(prometheus={query: None}):
        assert run(handle, firing()) == Skipped("recovered by itself")
    with FakeHost(prometheus={query: 0}, state={}):
        with pytest.raises(Failed) as failed:
            run(handle, firing())
    assert failed.value.message.startswith("denied: POST https://runbooks.internal/api/flush")
    assert "Traceback" not in failed.value.message


def test_the_component_host_converts_the_wit_shapes(monkeypatch):
    """What componentize-py hands the SDK for http, prometheus and state
    (dataclasses, Err with a variant), faked in its shapes."""

    class Err(Exception):
        def __init__(self, value):
            self.value = value

    def case(name):
        return type(name, (), {"__init__": lambda self, value: setattr(self, "value", value)})

    sent = []

    def request(req):
        sent.append(req)
        if "slow" in req.url:
            raise Err(case("Error_Timeout")("no answer within 5s"))
        return SimpleNamespace(sent=True, status=503, headers=[("Retry-After", "5")], body=b"busy", truncated=True)

    def query(promql, time):
        if promql == "rate(":
            raise Err(case("Error_BadQuery")("parse error"))
        return SimpleNamespace(series=[SimpleNamespace(labels=[("job", "x")], samples=[(1.0, 2.0)])], truncated=True)

    store = {}

    def state_set(key, value, ttl):
        if len(value) > 3:
            raise Err(case("Error_Denied")("value over max_value_bytes"))
        store[key] = (value, ttl)

    wit_http = SimpleNamespace(OutboundRequest=lambda *fields: SimpleNamespace(
        **dict(zip(["method", "url", "headers", "body", "secrets"], fields))), request=request)
    wit_prom = SimpleNamespace(query=query, query_range=lambda promql, start, end, step: query(promql, None))
    wit_state = SimpleNamespace(
        get=lambda key: store.get(key, (None,))[0],
        set=state_set,
        delete=lambda key: store.pop(key, None) is not None,
    )
    monkeypatch.setattr(autoheal_sdk, "_wit_http", wit_http, raising=False)
    monkeypatch.setattr(autoheal_sdk, "_wit_prometheus", wit_prom, raising=False)
    monkeypatch.setattr(autoheal_sdk, "_wit_state", wit_state, raising=False)
    monkeypatch.setattr(autoheal_sdk, "Err", Err, raising=False)
    monkeypatch.setattr(autoheal_sdk, "_host", autoheal_sdk._ComponentHost())

    answer = http.post(RUNBOOK, body="x", headers={"A": "1"}, secrets=["T"])
    assert (answer.status, answer.ok, answer.text, answer.truncated, answer.header("retry-after")) == (503, False, "busy", True, "5")
    assert (sent[0].method, sent[0].body, sent[0].headers, sent[0].secrets) == ("POST", b"x", [("A", "1")], ["T"])
    with pytest.raises(HttpError) as slow:
        http.get(RUNBOOK + "slow")
    assert slow.value.kind == "timeout"
    assert prometheus.query("up") == Answer([Series({"job": "x"}, [(1.0, 2.0)])], truncated=True)
    assert prometheus.query_range("up", 0, 1, 1).series[0].value == 2.0
    with pytest.raises(PrometheusError) as bad:
        prometheus.query("rate(")
    assert bad.value.kind == "bad_query"
    state.set("k", "v", ttl_seconds=60)
    assert (state.get("k"), store["k"]) == ("v", ("v", 60))
    with pytest.raises(StateError) as denied:
        state.set("k", "long")
    assert denied.value.kind == "denied"
    assert state.delete("k") is True and state.get("k") is None
