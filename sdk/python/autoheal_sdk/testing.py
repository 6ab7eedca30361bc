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

HTTP, Prometheus and state are scripted the same way; a capability the
``FakeHost`` is not given is one the manifest lacks (every call ``denied``)::

    with FakeHost(
        Container("crm"),
        http={"POST https://runbooks.internal/api/": Response(200, '{"done": true}')},
        prometheus={'probe_success{job="crm"} == 0': [Series.sample({"job": "crm"}, 0)]},
        state={"tries:crm": "1"},
    ) as host:
        ...
    assert host.http.calls == [("POST", "https://runbooks.internal/api/flush")]
    assert host.http.requests[0].secrets == ["RUNBOOK_TOKEN"]
    assert host.prometheus.queries == ['probe_success{job="crm"} == 0']
    assert host.state.values == {"tries:crm": "2"}

``FakeHttp(answers, allow=[...], secrets=[...])``, ``FakePrometheus(answers,
allowed=False)`` and ``FakeState(values, max_keys=..., max_value_bytes=...)``
take the manifest's allow-lists and bounds, and go in the same arguments.
"""

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import autoheal_sdk
from autoheal_sdk import (
    Alert,
    Answer,
    ContainerError,
    ContainerInfo,
    ExecOutput,
    Failed,
    HttpError,
    LogLine,
    LogTail,
    PrometheusError,
    Response,
    Series,
    Skipped,
    StateError,
    answer,
)

__all__ = [
    "Container",
    "FakeContainers",
    "FakeHttp",
    "FakePrometheus",
    "FakeState",
    "Request",
    "Response",
    "Series",
    "Answer",
    "HttpError",
    "PrometheusError",
    "StateError",
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


def _matches(prefix: str, url: str) -> bool:
    """``url`` is under ``prefix`` on a segment boundary, as the host checks
    (``/flush`` allows ``/flush`` and ``/flush/all``, not ``/flushall``)."""
    if not url.startswith(prefix):
        return False
    rest = url[len(prefix) :]
    return not rest or prefix.endswith("/") or rest[0] in "/?"


def _rule(rule: str) -> Tuple[str, str]:
    method, sep, prefix = rule.strip().partition(" ")
    if not sep or not prefix.strip():
        raise ValueError(f"{rule!r} is not \"METHOD URL-PREFIX\" (\"GET https://runbooks.internal/api/\")")
    return method.upper(), prefix.strip()


@dataclass
class Request:
    """One ``http.request`` the plugin made, as the fake received it."""

    method: str
    url: str
    headers: List[Tuple[str, str]]
    body: Optional[bytes]
    #: The secrets it named (the fake has no values: a request carries names only).
    secrets: List[str]

    @property
    def text(self) -> str:
        return (self.body or b"").decode("utf-8", errors="replace")


#: A scripted HTTP answer: a Response, an HttpError to raise, or a function of the Request.
HttpAnswer = Union[Response, HttpError, Callable[[Request], Response]]


class FakeHttp:
    """Scripted HTTP answers, by ``"METHOD URL-PREFIX"`` (the longest prefix
    that matches wins): a :class:`Response`, an :class:`HttpError` to raise
    (``HttpError("timeout", "...")``), or a function of the
    :class:`Request`. Every request is recorded in ``requests``.

    ``allow`` is the manifest's ``[capabilities.http] allow`` (None: any),
    ``secrets`` the names its ``secrets`` maps (None: any); outside them a
    request is ``denied``. A request allowed but not scripted ``failed``s,
    naming it. With ``dry_run`` an effect (not GET or HEAD) is recorded and
    answers ``sent=False``, status 0, as the host does."""

    def __init__(
        self,
        answers: Optional[Dict[str, HttpAnswer]] = None,
        allow: Optional[Iterable[str]] = None,
        secrets: Optional[Iterable[str]] = None,
        dry_run: bool = False,
    ):
        self.answers = [(_rule(rule), answer) for rule, answer in (answers or {}).items()]
        self.allow = None if allow is None else [_rule(rule) for rule in allow]
        self.secrets = None if secrets is None else set(secrets)
        self.dry_run = dry_run
        self.requests: List[Request] = []

    @property
    def calls(self) -> List[Tuple[str, str]]:
        """The requests made, as ``(method, url)``."""
        return [(r.method, r.url) for r in self.requests]

    def request(self, method, url, headers, body, secrets) -> Response:
        request = Request(method, url, list(headers), body, list(secrets))
        self.requests.append(request)
        if self.allow is not None and not any(m == method and _matches(p, url) for m, p in self.allow):
            raise HttpError("denied", f"{method} {url} is not in the manifest's [capabilities.http] allow")
        for name in secrets:
            if self.secrets is not None and name not in self.secrets:
                raise HttpError("denied", f"secret {name} is not in the manifest's [capabilities.http] secrets")
        if self.dry_run and method not in ("GET", "HEAD"):
            return Response(status=0, sent=False)
        scripted = [(len(p), answer) for (m, p), answer in self.answers if m == method and _matches(p, url)]
        if not scripted:
            raise HttpError("failed", f"the fake has no answer for {method} {url}: script one in http={{...}}")
        answer = max(scripted, key=lambda found: found[0])[1]
        if isinstance(answer, HttpError):
            raise HttpError(answer.kind, answer.message)
        if callable(answer) and not isinstance(answer, Response):
            answer = answer(request)
        return replace(answer, headers=list(answer.headers))


#: A scripted PromQL answer: an Answer, a list of Series, one number (one
#: series without labels), None (no series), or a PrometheusError to raise.
PromAnswer = Union[Answer, List[Series], float, None, PrometheusError]


class FakePrometheus:
    """Scripted PromQL answers, by the exact query text (range queries
    answer the same, samples as scripted). Every query is recorded in
    ``calls``: ``("query", promql, time)`` or ``("query_range", promql,
    start, end, step)``; ``queries`` has the PromQL alone. A query not
    scripted ``failed``s, naming it (script ``None`` for "no series").
    ``allowed=False`` is a manifest without ``[capabilities.prometheus]``:
    every query is ``denied``."""

    def __init__(self, answers: Optional[Dict[str, PromAnswer]] = None, allowed: bool = True):
        self.answers = dict(answers or {})
        self.allowed = allowed
        self.calls: List[tuple] = []

    @property
    def queries(self) -> List[str]:
        return [call[1] for call in self.calls]

    def _answer(self, promql: str) -> Answer:
        if not self.allowed:
            raise PrometheusError("denied", "the manifest has no [capabilities.prometheus]")
        if promql not in self.answers:
            raise PrometheusError("failed", f"the fake has no answer for {promql!r}: script one in prometheus={{...}}")
        scripted = self.answers[promql]
        if isinstance(scripted, PrometheusError):
            raise PrometheusError(scripted.kind, scripted.message)
        if scripted is None:
            return Answer()
        if isinstance(scripted, Answer):
            return replace(scripted, series=[replace(s) for s in scripted.series])
        if isinstance(scripted, (int, float)):
            return Answer([Series.sample({}, float(scripted))])
        return Answer([replace(s) for s in scripted])

    def query(self, promql: str, time: Optional[float]) -> Answer:
        self.calls.append(("query", promql, time))
        return self._answer(promql)

    def query_range(self, promql: str, start: float, end: float, step: float) -> Answer:
        self.calls.append(("query_range", promql, start, end, step))
        return self._answer(promql)


_KEY_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")


class FakeState:
    """The plugin's key-value store as a dict: ``values`` starts as given
    and is what the plugin left at the end; ``ttls`` the TTL of each
    ``set`` (None: the manifest's longest; the fake never expires a key).
    Every call is recorded in ``calls``: ``("get", key)``, ``("set", key,
    value, ttl)``, ``("delete", key)``. The host's bounds answer
    ``denied``: a key not 1 to 128 characters of ``[A-Za-z0-9_.:-]``, a
    value over ``max_value_bytes``, a new key past ``max_keys``; so does
    every call with ``allowed=False`` (no ``[capabilities.state]``). With
    ``dry_run`` writes are recorded, not kept."""

    def __init__(
        self,
        values: Optional[Dict[str, str]] = None,
        max_keys: int = 64,
        max_value_bytes: int = 4096,
        allowed: bool = True,
        dry_run: bool = False,
    ):
        self.values: Dict[str, str] = dict(values or {})
        self.ttls: Dict[str, Optional[int]] = {}
        self.max_keys = max_keys
        self.max_value_bytes = max_value_bytes
        self.allowed = allowed
        self.dry_run = dry_run
        self.calls: List[tuple] = []

    def _check(self, key: str) -> None:
        if not self.allowed:
            raise StateError("denied", "the manifest has no [capabilities.state]")
        if not 1 <= len(key) <= 128 or not set(key) <= _KEY_CHARS:
            raise StateError("denied", f"key {key!r} is not 1 to 128 characters of [A-Za-z0-9_.:-]")

    def get(self, key: str) -> Optional[str]:
        self.calls.append(("get", key))
        self._check(key)
        return self.values.get(key)

    def set(self, key: str, value: str, ttl_seconds: Optional[int]) -> None:  # noqa: A003 - the WIT's name
        self.calls.append(("set", key, value, ttl_seconds))
        self._check(key)
        if len(value.encode("utf-8")) > self.max_value_bytes:
            raise StateError("denied", f"value of {key} is over max_value_bytes ({self.max_value_bytes})")
        if key not in self.values and len(self.values) >= self.max_keys:
            raise StateError("denied", f"{self.max_keys} keys are set (max_keys): delete one first")
        if not self.dry_run:
            self.values[key] = value
            self.ttls[key] = ttl_seconds

    def delete(self, key: str) -> bool:
        self.calls.append(("delete", key))
        self._check(key)
        was_set = key in self.values
        if not self.dry_run:
            self.values.pop(key, None)
            self.ttls.pop(key, None)
        return was_set


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
        http: Union["FakeHttp", Dict[str, HttpAnswer], None] = None,
        prometheus: Union["FakePrometheus", Dict[str, PromAnswer], None] = None,
        state: Union["FakeState", Dict[str, str], None] = None,
    ):
        self.containers = FakeContainers(containers, allowed, failing, signals, commands, dry_run)
        # A capability not given is one the manifest does not have: denied.
        if not isinstance(http, FakeHttp):
            http = FakeHttp(http, allow=None if http is not None else [])
        if not isinstance(prometheus, FakePrometheus):
            prometheus = FakePrometheus(prometheus, allowed=prometheus is not None)
        if not isinstance(state, FakeState):
            state = FakeState(state, allowed=state is not None)
        http.dry_run = http.dry_run or dry_run
        state.dry_run = state.dry_run or dry_run
        self.http = http
        self.prometheus = prometheus
        self.state = state
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

    def http_request(self, method, url, headers, body, secrets) -> Response:
        return self.http.request(method, url, headers, body, secrets)

    def prometheus_query(self, promql: str, time: Optional[float]) -> Answer:
        return self.prometheus.query(promql, time)

    def prometheus_query_range(self, promql: str, start: float, end: float, step: float) -> Answer:
        return self.prometheus.query_range(promql, start, end, step)

    def state_get(self, key: str) -> Optional[str]:
        return self.state.get(key)

    def state_set(self, key: str, value: str, ttl_seconds: Optional[int]) -> None:
        self.state.set(key, value, ttl_seconds)

    def state_delete(self, key: str) -> bool:
        return self.state.delete(key)

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
