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
allow-list: names, or ``label:KEY=VALUE`` for every container carrying that
label), one in ``failing`` a ``runtime`` error; a restart sets the container
running with uptime 0. A signal outside ``signals`` and a command outside
``commands`` (exact argv lists) are ``denied``; ``None`` allows any. A
command a container was not seeded with (``execs``) exits 0 with no output.
With ``dry_run=True`` effects are recorded, not performed, and ``exec``
answers ``ran=False``::

    with FakeHost(
        Container("cache", execs={("redis-cli", "FLUSHDB"): ExecOutput(True, 0, "OK")},
                  output=[("stderr", "ERROR: stale")]),
        commands=[["redis-cli", "FLUSHDB"]],
    ) as host:
        ...
    assert host.containers.executed == [("cache", ["redis-cli", "FLUSHDB"])]
"""

from dataclasses import dataclass, field, replace
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import autoheal_sdk
from autoheal_sdk import (
    Alert,
    ContainerError,
    ContainerInfo,
    ExecOutput,
    Failed,
    LogLine,
    LogTail,
    Skipped,
    answer,
)

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
    "ExecOutput",
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
    labels: Dict[str, str] = field(default_factory=dict)
    #: What ``logs`` answers from: ``(source, text)``, oldest first.
    output: List[Tuple[str, str]] = field(default_factory=list)
    #: What ``exec`` of an argv answers (keys are tuples of words).
    execs: Dict[Tuple[str, ...], ExecOutput] = field(default_factory=dict)


def _signal_name(signal: str) -> str:
    """ "SIGHUP", "hup" and "HUP" are one signal: "HUP"."""
    upper = signal.strip().upper()
    return upper[3:] if upper.startswith("SIG") else upper


class FakeContainers:
    """Seeded containers: every call answers from them and is recorded in
    ``calls`` as ``(capability, name)`` (the selector for ``list-by-label``)."""

    def __init__(
        self,
        containers: Iterable[Container] = (),
        allowed: Optional[Iterable[str]] = None,
        failing: Optional[Dict[str, str]] = None,
        signals: Optional[Iterable[str]] = None,
        commands: Optional[Iterable[Sequence[str]]] = None,
        dry_run: bool = False,
    ):
        self.seeded: Dict[str, Container] = {c.name: replace(c) for c in containers}
        self.allowed = None if allowed is None else set(allowed)
        self.failing = dict(failing or {})
        self.signals = None if signals is None else {_signal_name(s) for s in signals}
        self.commands = None if commands is None else [list(c) for c in commands]
        self.dry_run = dry_run
        self.calls: List[Tuple[str, str]] = []
        #: The signals sent (in dry-run: recorded), as ``(name, signal without SIG)``.
        self.signalled: List[Tuple[str, str]] = []
        #: The commands run (in dry-run: recorded), as ``(name, argv)``.
        self.executed: List[Tuple[str, List[str]]] = []

    @property
    def restarted(self) -> List[str]:
        """The containers restarted, in order."""
        return [name for call, name in self.calls if call == "restart"]

    def _allows(self, name: str) -> bool:
        if self.allowed is None or name in self.allowed:
            return True
        found = self.seeded.get(name)
        labels = found.labels if found else {}
        return any(f"label:{k}={v}" in self.allowed for k, v in labels.items())

    def _find(self, call: str, name: str) -> Container:
        self.calls.append((call, name))
        if not self._allows(name):
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
            labels=dict(found.labels),
        )

    def restart(self, name: str) -> None:
        found = self._find("restart", name)
        if not self.dry_run:
            found.state, found.uptime_seconds = "running", 0
            found.restart_count += 1

    def signal(self, name: str, signal: str) -> None:
        self._find("signal", name)
        signal = _signal_name(signal)
        if self.signals is not None and signal not in self.signals:
            raise ContainerError("denied", f"signal {signal} is not in the manifest's signals")
        self.signalled.append((name, signal))

    def exec(self, name: str, argv: List[str]) -> ExecOutput:
        found = self._find("exec", name)
        if not argv:
            raise ContainerError("denied", "exec needs a command")
        if self.commands is not None and list(argv) not in self.commands:
            raise ContainerError("denied", f"command {list(argv)!r} is not in the manifest's exec")
        self.executed.append((name, list(argv)))
        if self.dry_run:
            return ExecOutput(ran=False, exit_code=None)
        return replace(found.execs.get(tuple(argv), ExecOutput(ran=True, exit_code=0)))

    def logs(self, name: str, tail: int) -> LogTail:
        found = self._find("logs", name)
        lines = [LogLine(source, text) for source, text in found.output]
        return LogTail(lines=lines[len(lines) - tail :] if tail else [], truncated=False)

    def list_by_label(self, selector: str) -> List[str]:
        self.calls.append(("list-by-label", selector))
        key, sep, value = selector.partition("=")
        if not key or not sep:
            raise ContainerError("denied", f"selector {selector!r} is not KEY=VALUE")
        if self.allowed is not None and f"label:{selector}" not in self.allowed:
            raise ContainerError("denied", f"selector {selector} is not in the manifest's containers")
        return sorted(c.name for c in self.seeded.values() if c.labels.get(key) == value)


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
        signals: Optional[Iterable[str]] = None,
        commands: Optional[Iterable[Sequence[str]]] = None,
        dry_run: bool = False,
    ):
        self.containers = FakeContainers(containers, allowed, failing, signals, commands, dry_run)
        self.logs = LogCapture()
        self._before = None

    def inspect(self, name: str) -> ContainerInfo:
        return self.containers.inspect(name)

    def restart(self, name: str) -> None:
        self.containers.restart(name)

    def signal(self, name: str, signal: str) -> None:
        self.containers.signal(name, signal)

    def exec(self, name: str, argv: List[str]) -> ExecOutput:
        return self.containers.exec(name, argv)

    def container_logs(self, name: str, tail: int) -> LogTail:
        return self.containers.logs(name, tail)

    def list_by_label(self, selector: str) -> List[str]:
        return self.containers.list_by_label(selector)

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
