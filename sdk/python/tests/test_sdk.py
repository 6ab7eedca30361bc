"""The Python SDK, natively under pytest, with its own fakes."""

import pytest

from autoheal_sdk import (
    ContainerError,
    PluginError,
    check_uptime,
    info,
    inspect,
    min_uptime_sec,
    plugin,
    restart,
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
