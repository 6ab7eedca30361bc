"""The Python SDK, natively under pytest, with its own fakes."""

import pytest

from autoheal_sdk import (
    ContainerError,
    ExecOutput,
    PluginError,
    check_uptime,
    exec,
    info,
    inspect,
    list_by_label,
    logs,
    min_uptime_sec,
    plugin,
    restart,
    signal,
    skip,
)
from autoheal_sdk.testing import Container, Failed, FakeHost, Skipped, firing, resolved, run


def test_outside_a_fake_host_a_call_says_what_to_use():
    with pytest.raises(RuntimeError, match="FakeHost"):
        restart("web")


def test_the_fake_containers_answer_and_record_each_call():
    with FakeHost(Container("web", uptime_seconds=10, health="unhealthy")) as host:
        assert inspect("web").health == "unhealthy"
        restart("web")
        assert inspect("web").uptime_seconds == 0
        with pytest.raises(ContainerError) as missing:
            inspect("db")
    assert missing.value.kind == "not_found"
    assert host.containers.calls == [
        ("inspect", "web"),
        ("restart", "web"),
        ("inspect", "web"),
        ("inspect", "db"),
    ]
    assert host.containers.restarted == ["web"]


def test_a_container_outside_the_allow_list_is_denied_and_a_failing_one_is_a_runtime_error():
    with FakeHost(Container("web"), Container("db"), allowed=["web"], failing={"web": "engine down"}):
        with pytest.raises(ContainerError) as denied:
            restart("db")
        # An engine that cannot say does not block the restart: logged.
        assert check_uptime("web", 60) is None
    assert denied.value.kind == "denied"


def test_the_log_capture_keeps_levels_and_messages():
    with FakeHost() as host:
        info("hello")
    assert host.logs.lines == [("info", "hello")]
    assert host.logs.messages("info") == ["hello"]


def handle(alert, config):
    if not alert.is_firing:
        return skip("resolved")
    name = alert.require_label("container")
    restart(name)
    return f"restarted {name}"


def test_run_answers_as_the_host_would():
    with FakeHost(Container("web")):
        assert run(handle, firing(container="web")) == "restarted web"
    assert run(handle, resolved(container="web")) == Skipped("resolved")
    with pytest.raises(Failed, match="has no label 'container'"):
        run(plugin(handle), firing(alertname="Down"))


def test_an_unexpected_exception_fails_with_its_traceback():
    def broken(alert, config):
        return {}["missing"]

    with pytest.raises(Failed) as failed:
        run(broken, firing())
    assert failed.value.message.startswith("KeyError: 'missing'")
    assert "Traceback" in failed.value.message


def test_min_uptime_sec_refuses_a_bad_value():
    assert min_uptime_sec({}) == 60
    with pytest.raises(PluginError, match="whole number"):
        min_uptime_sec({"min_uptime_sec": "1m"})


def test_the_new_calls_say_what_to_use_outside_a_fake_host():
    for call in (lambda: signal("web", "HUP"), lambda: exec("web", ["true"]), lambda: logs("web"), lambda: list_by_label("a=b")):
        with pytest.raises(RuntimeError, match="FakeHost"):
            call()


def test_signals_are_checked_against_the_allow_list_and_recorded():
    with FakeHost(Container("web"), signals=["HUP"]) as host:
        signal("web", "SIGHUP")
        with pytest.raises(ContainerError) as kill:
            signal("web", "KILL")
    assert kill.value.kind == "denied"
    assert host.containers.signalled == [("web", "HUP")]
    assert host.containers.calls == [("signal", "web"), ("signal", "web")]


def test_exec_answers_what_was_scripted_and_refuses_what_is_not_allowed():
    flush = ("redis-cli", "FLUSHDB")
    cache = Container("cache", execs={flush: ExecOutput(ran=True, exit_code=1, stderr="READONLY")})
    with FakeHost(cache, commands=[flush, ["true"]]) as host:
        out = exec("cache", list(flush))
        assert (out.exit_code, out.stderr, out.success) == (1, "READONLY", False)
        assert exec("cache", ["true"]).success, "unscripted: exit 0"
        with pytest.raises(ContainerError) as denied:
            exec("cache", ["redis-cli", "FLUSHALL"])
        with pytest.raises(TypeError, match="list of words"):
            exec("cache", "redis-cli FLUSHDB")
    assert denied.value.kind == "denied"
    assert host.containers.executed == [("cache", ["redis-cli", "FLUSHDB"]), ("cache", ["true"])]


def test_dry_run_records_effects_without_performing_them():
    with FakeHost(Container("cache"), dry_run=True) as host:
        out = exec("cache", ["redis-cli", "FLUSHDB"])
        restart("cache")
        assert inspect("cache").restart_count == 0
    assert (out.ran, out.exit_code, out.success) == (False, None, False)
    assert host.containers.executed == [("cache", ["redis-cli", "FLUSHDB"])]
    assert host.containers.restarted == ["cache"]


def test_logs_answer_the_last_lines_oldest_first():
    api = Container("api", output=[("stdout", "one"), ("stderr", "ERROR two"), ("stdout", "three")])
    with FakeHost(api) as host:
        tail = logs("api", 2)
        assert [(line.source, line.text) for line in tail.lines] == [("stderr", "ERROR two"), ("stdout", "three")]
        assert [line.text for line in tail.matching("ERROR")] == ["ERROR two"]
        assert len(logs("api").lines) == 3
        assert logs("api", 0).lines == []
        with pytest.raises(ValueError):
            logs("api", -1)
    assert host.logs.lines == [], "the plugin's log capture is apart from container logs"


def test_labels_select_containers_and_allow_them():
    app = {"com.docker.compose.service": "app"}
    with FakeHost(
        Container("app-2", labels=app),
        Container("app-1", labels=app),
        Container("db", labels={"com.docker.compose.service": "db"}),
        allowed=["label:com.docker.compose.service=app"],
    ):
        assert list_by_label("com.docker.compose.service=app") == ["app-1", "app-2"]
        assert inspect("app-1").labels == app
        restart("app-2")
        with pytest.raises(ContainerError) as wider:
            list_by_label("com.docker.compose.service=db")
        with pytest.raises(ContainerError) as by_name:
            restart("db")
        with pytest.raises(ContainerError) as malformed:
            list_by_label("com.docker.compose.service")
    assert wider.value.kind == by_name.value.kind == malformed.value.kind == "denied"


def test_the_component_host_converts_the_wit_shapes(monkeypatch):
    """What componentize-py hands the SDK (dataclasses, an enum, Err with a
    variant), faked in its shapes: the conversions of _ComponentHost."""
    import enum
    from types import SimpleNamespace

    import autoheal_sdk

    class Err(Exception):
        def __init__(self, value):
            self.value = value

    class LogSource(enum.Enum):
        STDOUT = 0
        STDERR = 1

    class Error_Denied:  # noqa: N801 - componentize-py's name
        def __init__(self, value):
            self.value = value

    def denied_listing(selector):
        raise Err(Error_Denied(f"selector {selector} is not allowed"))

    wit = SimpleNamespace(
        LogSource=LogSource,
        inspect=lambda name: SimpleNamespace(
            name=name, state="running", started_at="", uptime_seconds=None,
            restart_count=0, health=None, labels=[("k", "v")],
        ),
        exec=lambda name, argv: SimpleNamespace(
            ran=True, exit_code=0, stdout="OK", stderr="", truncated=False, timed_out=False
        ),
        logs=lambda name, tail: SimpleNamespace(
            lines=[SimpleNamespace(source=LogSource.STDERR, text="boom")], truncated=True
        ),
        list_by_label=denied_listing,
    )
    monkeypatch.setattr(autoheal_sdk, "_containers", wit, raising=False)
    monkeypatch.setattr(autoheal_sdk, "Err", Err, raising=False)
    monkeypatch.setattr(autoheal_sdk, "_host", autoheal_sdk._ComponentHost())
    assert inspect("x").labels == {"k": "v"}
    assert exec("x", ["true"]).success
    tail = logs("x", 5)
    assert (tail.lines[0].source, tail.lines[0].text, tail.truncated) == ("stderr", "boom", True)
    with pytest.raises(ContainerError) as denied:
        list_by_label("k=v")
    assert denied.value.kind == "denied" and str(denied.value) == "denied: selector k=v is not allowed"
