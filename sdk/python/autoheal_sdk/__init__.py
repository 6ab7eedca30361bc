"""Write autoheal remediation plugins in Python.

A plugin is a WebAssembly component built with componentize-py: a function
gets one Alertmanager alert and the manifest's ``[config]`` table and returns
a short summary of what it did, or :func:`skip` with why it did nothing. It
reaches the world only through the container calls (:func:`inspect`,
:func:`restart`, :func:`signal`, :func:`exec`, :func:`logs`,
:func:`list_by_label`: what its manifest allows, nothing else) and the log
functions; files, sockets and the environment are not there.

    from autoheal_sdk import Alert, plugin, restart, info, skip

    def handle(alert: Alert, config: dict):
        if not alert.is_firing:
            return skip("nothing to do: alert is resolved")
        name = alert.require_label(config.get("container_label", "container"))
        restart(name)
        info(f"restarted {name}")
        return f"restarted {name}"

    WitWorld = plugin(handle)

Return :func:`skip` whenever the plugin looked and decided that nothing
should be done (healthy, too young, resolved): the host records
``action_skipped``, neither a success nor a failure, with no full cooldown,
so the alert is tried again while it fires. Raise :class:`PluginError` to
fail with a message; any other exception fails the action too, with its
type, message and traceback in the event.

The same module runs natively, so a plugin is unit-tested with plain
``pytest``: :mod:`autoheal_sdk.testing` stands in for the host (seeded
containers that record the calls, a log capture).
"""

import sys
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

from . import _preload

try:
    import wit_world
    from componentize_py_types import Err
    from wit_world import log as _log
    from wit_world.imports import containers as _containers
    from wit_world.imports import types as _types
except ImportError:
    # Natively (under pytest): no component around it. The host calls go to
    # whatever autoheal_sdk.testing installs; see _NoHost.
    wit_world = None

__all__ = [
    "Acted",
    "Alert",
    "Failed",
    "ContainerError",
    "ContainerInfo",
    "ExecOutput",
    "LogLine",
    "LogTail",
    "PluginError",
    "Skipped",
    "plugin",
    "skip",
    "inspect",
    "restart",
    "signal",
    "exec",
    "logs",
    "list_by_label",
    "debug",
    "info",
    "warn",
    "error",
    "DEFAULT_MIN_UPTIME_SEC",
    "min_uptime_sec",
    "too_young",
    "check_uptime",
]

#: Default for the ``min_uptime_sec`` config key, as in the Rust SDK.
DEFAULT_MIN_UPTIME_SEC = 60

#: The most of a traceback kept in the error (the host bounds it too).
MAX_TRACEBACK = 4000


class PluginError(Exception):
    """Fails the action with this message (and no traceback)."""


class Skipped:
    """What a handler returns when it decided not to act: see :func:`skip`."""

    def __init__(self, reason: str):
        self.reason = str(reason)

    def __repr__(self) -> str:
        return f"Skipped({self.reason!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Skipped) and other.reason == self.reason


def skip(reason: str) -> Skipped:
    """Return this from the handler to say "I decided not to act", and why."""
    return Skipped(reason)


def _status_of(status) -> str:
    if isinstance(status, str):
        return status
    return "firing" if status == _types.AlertStatus.FIRING else "resolved"


class Alert:
    """One alert of the webhook, with helpers for its labels and annotations."""

    def __init__(self, raw):
        self.status = _status_of(raw.status)
        self.labels: Dict[str, str] = dict(raw.labels)
        self.annotations: Dict[str, str] = dict(raw.annotations)
        self.starts_at = raw.starts_at
        self.ends_at = raw.ends_at
        self.fingerprint = raw.fingerprint
        self.generator_url = raw.generator_url

    @classmethod
    def of(
        cls,
        labels: Optional[Dict[str, str]] = None,
        status: str = "firing",
        annotations: Optional[Dict[str, str]] = None,
    ) -> "Alert":
        """An alert built in Python (tests), not received from the host."""
        alert = cls.__new__(cls)
        alert.status = status
        alert.labels = dict(labels or {})
        alert.annotations = dict(annotations or {})
        alert.starts_at = "2024-05-01T10:00:00Z"
        alert.ends_at = None
        alert.fingerprint = "0123456789abcdef"
        alert.generator_url = ""
        return alert

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def is_firing(self) -> bool:
        return self.status == "firing"

    def label(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.labels.get(name, default)

    def annotation(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.annotations.get(name, default)

    def require_label(self, name: str) -> str:
        """The label's value; a missing or empty one fails the action, naming it."""
        value = self.labels.get(name, "")
        if not value:
            raise PluginError(f"alert {self.alertname!r} has no label {name!r}")
        return value


@dataclass
class ContainerInfo:
    """What ``inspect`` tells of a container."""

    name: str
    state: str
    started_at: str
    uptime_seconds: Optional[int]
    restart_count: int
    health: Optional[str]
    #: The container's labels (``com.docker.compose.service``, ...).
    labels: Dict[str, str] = field(default_factory=dict)

    @property
    def is_running(self) -> bool:
        return self.state == "running"


@dataclass
class ExecOutput:
    """What a command run by :func:`exec` gave back.

    ``ran`` is False in dry-run (recorded, not run: no exit code, no output);
    ``exit_code`` is None when it was not run or ``timed_out``; ``stdout`` and
    ``stderr`` are cut to the manifest's ``max_output_bytes`` (``truncated``).
    """

    ran: bool
    exit_code: Optional[int]
    stdout: str = ""
    stderr: str = ""
    truncated: bool = False
    timed_out: bool = False

    @property
    def success(self) -> bool:
        """It ran and exited with code 0."""
        return self.ran and self.exit_code == 0


@dataclass
class LogLine:
    """One line of a container's output: ``source`` is "stdout" or "stderr"."""

    source: str
    text: str


@dataclass
class LogTail:
    """The last lines of a container's output, oldest first; ``truncated``:
    older lines were left out to stay within the manifest's byte bound."""

    lines: List[LogLine]
    truncated: bool = False

    def matching(self, needle: str) -> List[LogLine]:
        """The lines that contain ``needle`` (a plain substring, case-sensitive)."""
        return [line for line in self.lines if needle in line.text]


class ContainerError(Exception):
    """A container call failed: ``kind`` is ``denied``, ``not_found`` or ``runtime``."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind}: {message}" if kind == "denied" else message)
        self.kind = kind
        self.message = message


def _container_error(err) -> ContainerError:
    value = err.value
    kind = {
        "Error_Denied": "denied",
        "Error_NotFound": "not_found",
        "Error_Runtime": "runtime",
    }.get(type(value).__name__, "runtime")
    message = getattr(value, "value", str(value))
    if kind == "not_found":
        message = f"container {message} not found"
    return ContainerError(kind, message)


class _ComponentHost:
    """The host's imports, inside a component."""

    def inspect(self, name: str) -> ContainerInfo:
        try:
            raw = _containers.inspect(name)
        except Err as err:
            raise _container_error(err) from None
        return ContainerInfo(
            name=raw.name,
            state=raw.state,
            started_at=raw.started_at,
            uptime_seconds=raw.uptime_seconds,
            restart_count=raw.restart_count,
            health=raw.health,
            labels=dict(raw.labels),
        )

    def restart(self, name: str) -> None:
        try:
            _containers.restart(name)
        except Err as err:
            raise _container_error(err) from None

    def signal(self, name: str, signal: str) -> None:
        try:
            _containers.signal(name, signal)
        except Err as err:
            raise _container_error(err) from None

    def exec(self, name: str, argv: List[str]) -> ExecOutput:
        try:
            raw = _containers.exec(name, argv)
        except Err as err:
            raise _container_error(err) from None
        return ExecOutput(
            ran=raw.ran,
            exit_code=raw.exit_code,
            stdout=raw.stdout,
            stderr=raw.stderr,
            truncated=raw.truncated,
            timed_out=raw.timed_out,
        )

    # Not `logs`: a test's FakeHost keeps its log capture under that name.
    def container_logs(self, name: str, tail: int) -> LogTail:
        try:
            raw = _containers.logs(name, tail)
        except Err as err:
            raise _container_error(err) from None
        stderr = _containers.LogSource.STDERR
        return LogTail(
            lines=[LogLine("stderr" if line.source == stderr else "stdout", line.text) for line in raw.lines],
            truncated=raw.truncated,
        )

    def list_by_label(self, selector: str) -> List[str]:
        try:
            return list(_containers.list_by_label(selector))
        except Err as err:
            raise _container_error(err) from None

    def log(self, level: str, message: str) -> None:
        _log(level, message)


class _NoHost:
    """Natively, before a test installed a fake: says what to do instead."""

    def _missing(self, call: str):
        raise RuntimeError(
            f"autoheal_sdk.{call}() has no host outside a component: in a test, "
            "run the plugin inside `with autoheal_sdk.testing.FakeHost(...)`"
        )

    def inspect(self, name: str) -> ContainerInfo:
        self._missing("inspect")

    def restart(self, name: str) -> None:
        self._missing("restart")

    def signal(self, name: str, signal: str) -> None:
        self._missing("signal")

    def exec(self, name: str, argv: List[str]) -> ExecOutput:
        self._missing("exec")

    def container_logs(self, name: str, tail: int) -> LogTail:
        self._missing("logs")

    def list_by_label(self, selector: str) -> List[str]:
        self._missing("list_by_label")

    def log(self, level: str, message: str) -> None:
        self._missing(level)


#: Where the host calls go: the component's imports, or a test's fakes.
_host = _ComponentHost() if wit_world is not None else _NoHost()


def inspect(name: str) -> ContainerInfo:
    """The state of container ``name`` (one the manifest allows)."""
    return _host.inspect(name)


def restart(name: str) -> None:
    """Restarts container ``name``; in dry-run the host only records it."""
    _host.restart(name)


def signal(name: str, signal: str) -> None:
    """Sends ``signal`` ("HUP", "USR1"; "SIGHUP" is the same) to container
    ``name``'s main process: only a signal the manifest lists under
    ``[capabilities] signals``. An effect: in dry-run the host only records it."""
    _host.signal(name, str(signal))


def exec(name: str, argv: Sequence[str]) -> ExecOutput:  # noqa: A001 - the WIT's name
    """Runs ``argv`` in container ``name``, never through a shell: only a
    command the manifest allows under ``[[capabilities.exec]]``. A non-zero
    exit code is not an error: read ``exit_code`` (or ``success``). An
    effect: in dry-run it is recorded, not run (``ran`` is False)."""
    if isinstance(argv, str):
        raise TypeError("exec() takes the argv as a list of words, not a string: no shell splits it")
    return _host.exec(name, [str(arg) for arg in argv])


def logs(name: str, tail: int = 100) -> LogTail:
    """The last ``tail`` lines of container ``name``'s stdout and stderr,
    oldest first, within the manifest's ``[capabilities.logs]`` bounds."""
    if tail < 0:
        raise ValueError(f"logs(): tail must not be negative, got {tail}")
    return _host.container_logs(name, int(tail))


def list_by_label(selector: str) -> List[str]:
    """The containers carrying a label, ``selector`` being "KEY=VALUE": only a
    selector the manifest lists (as ``label:KEY=VALUE``)."""
    return _host.list_by_label(selector)


def debug(message: str) -> None:
    _host.log("debug", str(message))


def info(message: str) -> None:
    _host.log("info", str(message))


def warn(message: str) -> None:
    _host.log("warn", str(message))


def error(message: str) -> None:
    _host.log("error", str(message))


def min_uptime_sec(config: Dict[str, str]) -> int:
    """The ``min_uptime_sec`` config key in seconds, or the default."""
    text = config.get("min_uptime_sec")
    if text is None:
        return DEFAULT_MIN_UPTIME_SEC
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise PluginError(f"config key min_uptime_sec: {text!r} is not a whole number of seconds")
    return value


def too_young(name: str, uptime_seconds: Optional[int], min_uptime: int) -> Optional[str]:
    """Why not to restart, when the container started less than ``min_uptime``
    ago (the reason of a :func:`skip`); ``None`` otherwise.

    An unknown uptime does not block the restart.
    """
    if uptime_seconds is not None and uptime_seconds < min_uptime:
        return f"{name} started {uptime_seconds}s ago (min_uptime_sec = {min_uptime})"
    return None


def check_uptime(name: str, min_uptime: int) -> Optional[str]:
    """Inspects ``name``: why to skip if it is too young, else ``None``
    (go ahead). An engine that cannot say is logged and does not block."""
    try:
        found = inspect(name)
    except ContainerError as err:
        if err.kind == "runtime":
            warn(f"uptime of {name} unknown ({err.message}); restarting anyway")
            return None
        raise
    return too_young(name, found.uptime_seconds, min_uptime)


def _failure(exc: BaseException) -> str:
    if isinstance(exc, (PluginError, ContainerError)):
        return str(exc)
    trace = traceback.format_exc()
    if len(trace) > MAX_TRACEBACK:
        trace = "…" + trace[-MAX_TRACEBACK:]
    return f"{type(exc).__name__}: {exc}\n{trace}"


class Acted(str):
    """What a handler did (the ``acted`` outcome), as :func:`plugin` answers it."""


def answer(handler: Callable[[Alert, Dict[str, str]], object], alert: Alert, config: Dict[str, str]):
    """Runs ``handler`` as the component runs it: :class:`Acted` with what it
    did, or :class:`Skipped`; a failure raises :class:`Failed` with the
    message the host would record."""
    try:
        result = handler(alert, dict(config))
    except Exception as exc:  # every failure is the plugin's answer, never a trap
        raise Failed(_failure(exc)) from exc
    if isinstance(result, Skipped):
        return result
    return Acted("ok" if result is None else str(result))


class Failed(Exception):
    """The action failed: ``message`` is what the host records as its error."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def plugin(handler: Callable[[Alert, Dict[str, str]], object]) -> type:
    """The component's export for ``handler``: bind it as ``WitWorld``.

    The handler's return value is what it did (``None`` reads as ``"ok"``),
    or :func:`skip` with why it did nothing; an exception fails the action
    with its message (and traceback).

    At build time (componentize-py runs the module's top level once and
    keeps the result) every module the plugin imports anywhere, even inside
    a function, is imported here too: only modules imported then are in the
    component, so ``import json`` on an error path works at run time as well.
    """
    if wit_world is None:
        # Natively: a class with the same handle(), for tests that call it.
        class Native:
            def handle(self, alert, config):
                return answer(handler, alert, dict(config))

        Native.handler = staticmethod(handler)
        return Native

    _preload.modules_imported_by(sys.modules.get(handler.__module__))

    class WitWorld(wit_world.WitWorld):
        def handle(self, alert, config):
            try:
                done = answer(handler, Alert(alert), dict(config))
            except Failed as failed:
                raise Err(failed.message)
            if isinstance(done, Skipped):
                return _types.Outcome_Skipped(done.reason)
            return _types.Outcome_Acted(str(done))

    WitWorld.handler = staticmethod(handler)
    return WitWorld
