"""Write autoheal remediation plugins in Python.

A plugin is a WebAssembly component built with componentize-py: a function
gets one Alertmanager alert and the manifest's ``[config]`` table and returns
a short summary of what it did, or :func:`skip` with why it did nothing. It
reaches the world only through the container calls (:func:`inspect`,
:func:`restart`, :func:`signal`, :func:`exec`, :func:`logs`,
:func:`list_by_label`: what its manifest allows, nothing else), the
:data:`http`, :data:`prometheus` and :data:`state` calls (when its manifest
has those sections) and the log functions; files, sockets and the
environment are not there.

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
containers, scripted HTTP and PromQL answers, a state dict, all recording
the calls; a log capture).

Checking before acting, with a secret the plugin names but never reads::

    from autoheal_sdk import http, prometheus, skip

    def handle(alert, config):
        if not prometheus.still_failing('probe_success{job="crm"} == 0'):
            return skip("recovered by itself")
        answer = http.post("https://runbooks.internal/api/flush", json={"cache": "crm"},
                           secrets=["RUNBOOK_TOKEN"])
        return f"flushed: {answer.status}"
"""

import json as _json
import sys
import traceback
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from . import _preload

try:
    import wit_world
    from componentize_py_types import Err
    from wit_world import log as _log
    from wit_world.imports import containers as _containers
    from wit_world.imports import http as _wit_http
    from wit_world.imports import prometheus as _wit_prometheus
    from wit_world.imports import state as _wit_state
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
    "HostCallError",
    "HttpError",
    "Response",
    "PrometheusError",
    "Series",
    "Answer",
    "StateError",
    "http",
    "prometheus",
    "state",
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


class HostCallError(Exception):
    """A host call failed: ``kind`` is the WIT error's case (``denied``, ...,
    with ``_`` for ``-``), ``message`` the host's text. Raised out of the
    handler it fails the action with ``str(err)`` (no traceback)."""

    def __init__(self, kind: str, message: str):
        super().__init__(f"{kind.replace('_', ' ')}: {message}")
        self.kind = kind
        self.message = message


class ContainerError(HostCallError):
    """A container call failed: ``kind`` is ``denied``, ``not_found`` or ``runtime``."""

    def __init__(self, kind: str, message: str):
        super().__init__(kind, message)
        # As it always read: only a refusal says so.
        self.args = (f"{kind}: {message}" if kind == "denied" else message,)


class HttpError(HostCallError):
    """``http.request`` failed: ``kind`` is ``denied`` (the manifest does not
    allow the method and URL, the address, or a secret; or a host guard
    refused), ``timeout`` (not done within the manifest's timeout) or
    ``failed`` (no answer: a name that does not resolve, a refused
    connection, TLS, a redirect outside the allow-list). An answer with a
    4xx or 5xx status is not an error: read ``Response.status``."""


class PrometheusError(HostCallError):
    """A Prometheus query failed: ``kind`` is ``denied`` (no
    ``[capabilities.prometheus]``, or a host guard), ``bad_query``
    (Prometheus refused the PromQL: its message) or ``failed`` (Prometheus
    unreachable or too slow)."""


class StateError(HostCallError):
    """A state call failed: ``kind`` is ``denied`` (no ``[capabilities.state]``,
    a key or value past the bounds, too many keys) or ``failed`` (the store
    could not be read or written)."""


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


def _wit_error(err, error_class):
    """The WIT ``error`` variant componentize-py raised in ``Err``, as
    ``error_class`` (its case ``Error_BadQuery`` becoming kind ``bad_query``)."""
    value = err.value
    case = type(value).__name__.partition("_")[2]
    kind = "".join(f"_{c.lower()}" if c.isupper() else c for c in case).lstrip("_") or "failed"
    return error_class(kind, str(getattr(value, "value", value)))


def _pairs(headers) -> List[Tuple[str, str]]:
    """Headers as (name, value) pairs, from a dict or from pairs."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(name), str(value)) for name, value in items]


@dataclass
class Response:
    """What ``http.request`` answered.

    ``sent`` is False in dry-run for an effect (recorded, not sent: status 0,
    no body). ``body`` is bytes, cut to the manifest's ``max_response_bytes``
    (``truncated``); a secret's value in it (or in a header) reads
    ``[secret NAME]``. ``headers`` are (name, value) pairs in order; see
    :meth:`header`. A 4xx or 5xx is an answer, not an error: check ``ok``.
    """

    status: int
    body: bytes = b""
    headers: List[Tuple[str, str]] = field(default_factory=list)
    truncated: bool = False
    sent: bool = True

    def __post_init__(self):
        # Tests script bodies as text too.
        if isinstance(self.body, str):
            self.body = self.body.encode("utf-8")
        self.body = bytes(self.body)
        self.headers = _pairs(self.headers)

    @property
    def ok(self) -> bool:
        """A 2xx status (False when not sent)."""
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        """The body as text (UTF-8, invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        """The body parsed as JSON (``ValueError`` if it is not)."""
        return _json.loads(self.text)

    def header(self, name: str) -> Optional[str]:
        """The first header called ``name`` (any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)


@dataclass
class Series:
    """One series of a query's answer: its labels, and its samples as
    ``(unix seconds, value)`` oldest first (one for an instant query)."""

    labels: Dict[str, str] = field(default_factory=dict)
    samples: List[Tuple[float, float]] = field(default_factory=list)

    @classmethod
    def sample(cls, labels: Optional[Dict[str, str]], value: float, at: float = 0.0) -> "Series":
        """A series with one sample (what a test scripts)."""
        return cls(dict(labels or {}), [(float(at), float(value))])

    @property
    def value(self) -> Optional[float]:
        """Its newest value (None without samples)."""
        return self.samples[-1][1] if self.samples else None

    def label(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.labels.get(name, default)


@dataclass
class Answer:
    """What a query answered: ``series`` as Prometheus ordered them;
    ``truncated`` when more came back than the manifest's ``max_series``
    (these are the first of them)."""

    series: List[Series] = field(default_factory=list)
    truncated: bool = False

    @property
    def value(self) -> Optional[float]:
        """The newest value of the first series; None when no series came back."""
        return self.series[0].value if self.series else None

    def any_above(self, threshold: float) -> bool:
        """Some series' newest value is above ``threshold`` (NaN is not)."""
        return any(s.value is not None and s.value > threshold for s in self.series)

    def any_below(self, threshold: float) -> bool:
        """Some series' newest value is below ``threshold`` (NaN is not)."""
        return any(s.value is not None and s.value < threshold for s in self.series)


def _answer(raw) -> Answer:
    return Answer(
        series=[
            Series({k: v for k, v in s.labels}, [(float(t), float(v)) for t, v in s.samples])
            for s in raw.series
        ],
        truncated=bool(raw.truncated),
    )


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

    def http_request(self, method, url, headers, body, secrets) -> Response:
        request = _wit_http.OutboundRequest(method, url, headers, body, secrets)
        try:
            raw = _wit_http.request(request)
        except Err as err:
            raise _wit_error(err, HttpError) from None
        return Response(
            status=raw.status, body=raw.body, headers=list(raw.headers), truncated=raw.truncated, sent=raw.sent
        )

    def prometheus_query(self, promql: str, time: Optional[float]) -> Answer:
        try:
            return _answer(_wit_prometheus.query(promql, time))
        except Err as err:
            raise _wit_error(err, PrometheusError) from None

    def prometheus_query_range(self, promql: str, start: float, end: float, step: float) -> Answer:
        try:
            return _answer(_wit_prometheus.query_range(promql, start, end, step))
        except Err as err:
            raise _wit_error(err, PrometheusError) from None

    def state_get(self, key: str) -> Optional[str]:
        try:
            return _wit_state.get(key)
        except Err as err:
            raise _wit_error(err, StateError) from None

    def state_set(self, key: str, value: str, ttl_seconds: Optional[int]) -> None:
        try:
            _wit_state.set(key, value, ttl_seconds)
        except Err as err:
            raise _wit_error(err, StateError) from None

    def state_delete(self, key: str) -> bool:
        try:
            return bool(_wit_state.delete(key))
        except Err as err:
            raise _wit_error(err, StateError) from None

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

    def http_request(self, method, url, headers, body, secrets) -> Response:
        self._missing("http.request")

    def prometheus_query(self, promql, time) -> Answer:
        self._missing("prometheus.query")

    def prometheus_query_range(self, promql, start, end, step) -> Answer:
        self._missing("prometheus.query_range")

    def state_get(self, key) -> Optional[str]:
        self._missing("state.get")

    def state_set(self, key, value, ttl_seconds) -> None:
        self._missing("state.set")

    def state_delete(self, key) -> bool:
        self._missing("state.delete")

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


def _secret_names(secrets) -> List[str]:
    if secrets is None:
        return []
    if isinstance(secrets, str):
        return [secrets]
    return [str(name) for name in secrets]


class _Http:
    """HTTP requests to what the manifest's ``[capabilities.http] allow``
    lists (``"GET https://runbooks.internal/api/"``: a method and a URL
    prefix), nothing else. GET and HEAD are reads (performed in dry-run
    too); other methods are effects (recorded, not sent, in dry-run:
    ``Response.sent`` is False).

    Secrets are *names*: ``secrets=["RUNBOOK_TOKEN"]`` asks the host to put
    the secret the manifest maps under that name into the request (as the
    manifest says: ``"header:Authorization:Bearer {}"``). The plugin never
    sees a value, and any value that comes back reads ``[secret NAME]``.
    """

    def request(
        self,
        method: str,
        url: str,
        headers: Union[Dict[str, str], Iterable[Tuple[str, str]], None] = None,
        body: Union[bytes, str, None] = None,
        secrets: Union[Iterable[str], str, None] = None,
    ) -> Response:
        """Sends ``method`` ``url`` with ``headers`` (a dict or pairs) and
        ``body`` (bytes, or text sent as UTF-8), the host putting in the
        secrets *named* in ``secrets``. Any status is an answer
        (:class:`Response`); :class:`HttpError` when it was refused
        (``denied``), too slow (``timeout``) or not answered (``failed``)."""
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None:
            body = bytes(body)
        return _host.http_request(
            str(method).strip().upper(), str(url), _pairs(headers), body, _secret_names(secrets)
        )

    def get(self, url: str, headers=None, secrets=None) -> Response:
        """A GET (a read: performed in dry-run too)."""
        return self.request("GET", url, headers=headers, secrets=secrets)

    def post(self, url: str, body=None, headers=None, secrets=None, json=None) -> Response:
        """A POST (an effect: recorded, not sent, in dry-run). ``json=value``
        sends ``value`` as JSON, with ``Content-Type: application/json``
        unless ``headers`` set one."""
        if json is not None:
            if body is not None:
                raise TypeError("http.post(): give body or json, not both")
            body = _json.dumps(json)
            headers = _pairs(headers)
            if not any(name.lower() == "content-type" for name, _ in headers):
                headers.append(("Content-Type", "application/json"))
        return self.request("POST", url, headers=headers, body=body, secrets=secrets)


class _Prometheus:
    """PromQL against the host's ``prometheus_url``, when the manifest has
    ``[capabilities.prometheus]``. Reads: performed in dry-run too, within
    the manifest's timeout and bounds on series and bytes.

    The question a plugin asks before it acts has helpers: :meth:`value`
    (the one value), :meth:`any_above` / :meth:`any_below` ("is the error
    rate still above 5%?", "is the probe still below 1?"),
    :meth:`still_failing` (does the alert's own expression still return
    series?) and :meth:`is_firing` (is the alert still firing in
    Prometheus?)."""

    def query(self, promql: str, time: Optional[float] = None) -> Answer:
        """An instant query, now or at ``time`` (unix seconds)."""
        return _host.prometheus_query(str(promql), None if time is None else float(time))

    def query_range(self, promql: str, start: float, end: float, step: float) -> Answer:
        """A range query from ``start`` to ``end`` (unix seconds) every ``step`` seconds."""
        if not step > 0:
            raise ValueError(f"prometheus.query_range(): step must be above 0 seconds, got {step}")
        return _host.prometheus_query_range(str(promql), float(start), float(end), float(step))

    def value(self, promql: str) -> Optional[float]:
        """The value of ``promql`` now, when it returns one series; None when
        it returns none. More than one series is ambiguous: a
        :class:`PluginError` that says to aggregate (``max(...)``)."""
        answer = self.query(promql)
        if len(answer.series) > 1:
            raise PluginError(
                f"prometheus.value({promql!r}): {len(answer.series)} series came back, not one: "
                "aggregate them (max(...), sum(...)) or use prometheus.query()"
            )
        return answer.value

    def any_above(self, promql: str, threshold: float) -> bool:
        """Some series of ``promql`` is above ``threshold`` now ("is the
        error rate still high?"). No series: False."""
        return self.query(promql).any_above(threshold)

    def any_below(self, promql: str, threshold: float) -> bool:
        """Some series of ``promql`` is below ``threshold`` now ("is the
        probe still failing?": ``probe_success`` below 1). No series: False."""
        return self.query(promql).any_below(threshold)

    def still_failing(self, promql: str) -> bool:
        """Whether an alert condition still holds: ``promql`` (written as an
        alerting rule's ``expr``, ``probe_success{job="crm"} == 0``) returns
        at least one series now, whatever its value, as Prometheus decides
        that an alert fires. A bare metric (``probe_success``) returns series
        while healthy too: compare it, or use :meth:`any_below`."""
        return bool(self.query(promql).series)

    def is_firing(self, alertname: str, labels: Optional[Dict[str, str]] = None) -> bool:
        """Whether Prometheus still has alert ``alertname`` firing with these
        labels (its ``ALERTS`` series): the alert Alertmanager sent may be
        minutes old."""
        matchers = [f'alertname="{_promql_string(alertname)}"', 'alertstate="firing"']
        matchers += [f'{key}="{_promql_string(value)}"' for key, value in (labels or {}).items()]
        return self.still_failing("ALERTS{" + ",".join(matchers) + "}")


def _promql_string(value: str) -> str:
    """A label value inside PromQL's double quotes."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _State:
    """A small key-value store of the plugin's own, kept across invocations
    (and restarts; shared by a cluster's replicas), when the manifest has
    ``[capabilities.state]``. Keys are 1 to 128 characters of
    ``[A-Za-z0-9_.:-]``; values are text, bounded by the manifest. ``set``
    and ``delete`` are effects: in dry-run recorded, not kept."""

    def get(self, key: str) -> Optional[str]:
        """The value of ``key``, or None if it is not set (or expired)."""
        return _host.state_get(str(key))

    def set(self, key: str, value: str, ttl_seconds: Optional[int] = None) -> None:  # noqa: A003 - the WIT's name
        """Sets ``key`` to ``value`` (text) for ``ttl_seconds`` (None: the
        manifest's ``max_ttl``)."""
        if not isinstance(value, str):
            raise TypeError(
                f"state.set({key!r}, ...): values are text, got {type(value).__name__}: "
                "store str(value) or json.dumps(value)"
            )
        if ttl_seconds is not None and (isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 0):
            raise ValueError(f"state.set({key!r}, ...): ttl_seconds must be a whole number of seconds, got {ttl_seconds!r}")
        _host.state_set(str(key), value, ttl_seconds)

    def delete(self, key: str) -> bool:
        """Removes ``key``; False if it was not set."""
        return _host.state_delete(str(key))


#: ``http.request(...)``, ``http.get(...)``, ``http.post(...)``: see :class:`_Http`.
http = _Http()
#: ``prometheus.query(...)`` and its helpers: see :class:`_Prometheus`.
prometheus = _Prometheus()
#: ``state.get/set/delete``: see :class:`_State`.
state = _State()


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
    if isinstance(exc, (PluginError, HostCallError)):
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
