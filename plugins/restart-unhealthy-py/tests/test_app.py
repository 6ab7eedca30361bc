"""restart-unhealthy-py under plain pytest, the host faked by autoheal_sdk.testing."""

from autoheal_sdk.testing import Container, FakeHost, Skipped, firing, run

import app


def test_restarts_only_the_unhealthy_container():
    with FakeHost(Container("sick", health="unhealthy"), Container("fine", health="healthy")) as host:
        answer = run(app.WitWorld, firing(container="sick,fine"), {})
    assert answer == "restarted sick; skipped: fine is healthy"
    assert host.containers.restarted == ["sick"]
    assert host.logs.messages("info") == ["restarted sick: it was unhealthy", "skipped: fine is healthy"]


def test_a_young_container_is_left_alone():
    with FakeHost(Container("sick", health="unhealthy", uptime_seconds=5)) as host:
        answer = run(app.WitWorld, firing(container="sick"), {"min_uptime_sec": "60"})
    assert answer == Skipped("sick started 5s ago (min_uptime_sec = 60)")
    assert host.containers.restarted == []
