"""Fakes of the host, for unit tests of a plugin under plain ``pytest``.

The SDK runs natively; inside ``with FakeHost(...)`` its host calls go to
seeded containers that record each call, and its log lines to a capture::

    from autoheal_sdk.testing import Container, FakeHost, firing
    import app

    def test_restarts_the_container():
        with FakeHost(Container("example", uptime_seconds=3600)) as host:
            answer = app.handle(firing(alertname="Down"), {"container": "example"})
        assert answer == "restarted example"
        assert host.containers.restarted == ["example"]
        assert host.logs.lines == [("info", "restarted example")]

The fakes answer as the host does: a container that was not seeded is
``not_found``, one outside ``allowed`` is ``denied`` (the manifest's
allow-list), one in ``failing`` a ``runtime`` error; a restart sets the
container running with uptime 0.
"""

from dataclasses import dataclass, replace
from typing import Dict, Iterable, List, Optional, Tuple

import autoheal_sdk
from autoheal_sdk import Alert, ContainerError, ContainerInfo, Failed, Skipped, answer

__all__ = [
    "Container",
    "FakeContainers",
    "LogCapture",
    "FakeHost",
    "firing",
    "resolved",
    "run",
    "Skipped",
    "Failed",
]


@dataclass
class Container:
    """A seeded container, as ``inspect`` tells of it."""

    name: str
    state: str = "running"
    uptime_seconds: Optional[int] = 3600
    health: Optional[str] = None
    restart_count: int = 0
    started_at: str = "2024-05-01T09:00:00Z"


class FakeContainers:
    """Seeded containers: ``inspect`` and ``restart`` answer from them and
    are recorded in ``calls`` as ``(capability, name)``."""

    def __init__(
        self,
        containers: Iterable[Container] = (),
        allowed: Optional[Iterable[str]] = None,
        failing: Optional[Dict[str, str]] = None,
    ):
        self.seeded: Dict[str, Container] = {c.name: replace(c) for c in containers}
        self.allowed = None if allowed is None else set(allowed)
        self.failing = dict(failing or {})
        self.calls: List[Tuple[str, str]] = []

    @property
    def restarted(self) -> List[str]:
        """The containers restarted, in order."""
        return [name for call, name in self.calls if call == "restart"]

    def _find(self, call: str, name: str) -> Container:
        self.calls.append((call, name))
        if self.allowed is not None and name not in self.allowed:
            raise ContainerError("denied", f"container {name} is not in the manifest's containers")
        if name in self.failing:
            raise ContainerError("runtime", self.failing[name])
        if name not in self.seeded:
            raise ContainerError("not_found", f"container {name} not found")
        return self.seeded[name]

    def inspect(self, name: str) -> ContainerInfo:
        found = self._find("inspect", name)
        return ContainerInfo(
            name=found.name,
            state=found.state,
            started_at=found.started_at,
            uptime_seconds=found.uptime_seconds,
            restart_count=found.restart_count,
            health=found.health,
        )

    def restart(self, name: str) -> None:
        found = self._find("restart", name)
        found.state, found.uptime_seconds = "running", 0
        found.restart_count += 1


class LogCapture:
    """The plugin's log lines, as ``(level, message)``."""

    def __init__(self):
        self.lines: List[Tuple[str, str]] = []

    def log(self, level: str, message: str) -> None:
        self.lines.append((level, message))

    def messages(self, level: Optional[str] = None) -> List[str]:
        return [m for lv, m in self.lines if level is None or lv == level]


class FakeHost:
    """Installs the fakes for the SDK's host calls inside ``with``."""

    def __init__(
        self,
        *containers: Container,
        allowed: Optional[Iterable[str]] = None,
        failing: Optional[Dict[str, str]] = None,
    ):
        self.containers = FakeContainers(containers, allowed, failing)
        self.logs = LogCapture()
        self._before = None

    def inspect(self, name: str) -> ContainerInfo:
        return self.containers.inspect(name)

    def restart(self, name: str) -> None:
        self.containers.restart(name)

    def log(self, level: str, message: str) -> None:
        self.logs.log(level, message)

    def __enter__(self) -> "FakeHost":
        self._before = autoheal_sdk._host
        autoheal_sdk._host = self
        return self

    def __exit__(self, *exc) -> None:
        autoheal_sdk._host = self._before


def firing(annotations: Optional[Dict[str, str]] = None, **labels: str) -> Alert:
    """A firing alert with these labels (``firing(alertname="Down", container="x")``)."""
    return Alert.of(labels, "firing", annotations)


def resolved(annotations: Optional[Dict[str, str]] = None, **labels: str) -> Alert:
    """A resolved alert with these labels."""
    return Alert.of(labels, "resolved", annotations)


def run(handler, alert: Alert, config: Optional[Dict[str, str]] = None):
    """``handler`` (a function, or the class :func:`autoheal_sdk.plugin`
    made) answered as the host would see it: ``Acted`` (a str) or
    ``Skipped``; a failure raises :class:`Failed` with the recorded message."""
    handler = getattr(handler, "handler", handler)
    return answer(handler, alert, dict(config or {}))
