// Types of autoheal-sdk.js, for plugins written in TypeScript.

export const DEFAULT_MIN_UPTIME_SEC: number;

export class PluginError extends Error {}

/** What a handler returns when it decided not to act. */
export class Skipped {
  reason: string;
}

/** Return this from the handler to say "I decided not to act", and why. */
export function skip(reason: string): Skipped;

export class ContainerError extends Error {
  kind: "denied" | "not_found" | "runtime";
  detail: string;
}

export class Alert {
  status: "firing" | "resolved";
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string | null;
  fingerprint: string;
  generatorUrl: string;
  readonly alertname: string;
  readonly isFiring: boolean;
  /** An alert built in a test, not received from the host. */
  static of(labels?: Record<string, string>, status?: "firing" | "resolved", annotations?: Record<string, string>): Alert;
  label(name: string, fallback?: string): string | undefined;
  annotation(name: string, fallback?: string): string | undefined;
  requireLabel(name: string): string;
}

export interface ContainerInfo {
  name: string;
  state: string;
  startedAt: string;
  uptimeSeconds: number | null;
  restartCount: number;
  health: string | null;
  /** The container's labels (`com.docker.compose.service`, ...). */
  labels: Record<string, string>;
}

/** What a command run by exec() gave back. */
export interface ExecOutput {
  /** false in dry-run: recorded, not run (no exit code, no output). */
  ran: boolean;
  /** null when it was not run or timed out. */
  exitCode: number | null;
  /** Each cut to the manifest's max_output_bytes (see truncated). */
  stdout: string;
  stderr: string;
  truncated: boolean;
  /** Still running at the manifest's exec timeout. */
  timedOut: boolean;
  /** It ran and exited with code 0. */
  success: boolean;
}

export interface LogLine {
  source: "stdout" | "stderr";
  text: string;
}

/** The last lines of a container's output, oldest first. */
export interface LogTail {
  lines: LogLine[];
  /** Older lines were left out to stay within the manifest's byte bound. */
  truncated: boolean;
}

export type Config = Record<string, string>;

/** A host call failed: `kind` is the WIT error's case ("-" written "_"), `detail` the host's text. */
export class HostCallError extends Error {
  constructor(kind: string, message: string);
  kind: string;
  detail: string;
}

/** http.request refused (denied), too slow (timeout) or not answered (failed). A 4xx/5xx is an answer, not an error. */
export class HttpError extends HostCallError {
  kind: "denied" | "timeout" | "failed";
}
/** A query refused (denied: no [capabilities.prometheus]), bad PromQL (bad_query), or Prometheus unreachable (failed). */
export class PrometheusError extends HostCallError {
  kind: "denied" | "bad_query" | "failed";
}
/** A state call refused (denied: no [capabilities.state], past a bound) or the store failed (failed). */
export class StateError extends HostCallError {
  kind: "denied" | "failed";
}

/** Headers to send: an object, a Map, or [name, value] pairs (repeats kept). */
export type Headers = Record<string, string> | Map<string, string> | [string, string][];

export interface RequestOptions {
  headers?: Headers;
  /** A string (sent as UTF-8) or bytes. */
  body?: string | Uint8Array | number[];
  /**
   * The *names* of secrets the manifest maps under [capabilities.http]
   * secrets ("RUNBOOK_TOKEN"): the host puts each value in, where the
   * manifest says. The plugin never sees a value; one that comes back
   * reads "[secret NAME]".
   */
  secrets?: string[] | string;
}

/** What http.request answered. */
export class HttpResponse {
  constructor(raw: { sent?: boolean; status: number; headers?: Headers; body?: string | Uint8Array; truncated?: boolean });
  /** false in dry-run for an effect: recorded, not sent (status 0, no body). */
  sent: boolean;
  status: number;
  /** In order, as [name, value]; see header(). */
  headers: [string, string][];
  /** Cut to the manifest's max_response_bytes (see truncated); secrets read "[secret NAME]". */
  body: Uint8Array;
  truncated: boolean;
  /** A 2xx status. */
  readonly ok: boolean;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json(): unknown;
  /** The first header of that name (any case), or null. */
  header(name: string): string | null;
}

/** HTTP to what [capabilities.http] allow lists ("METHOD URL-PREFIX"). GET and HEAD are reads; other methods effects (not sent in dry-run). */
export const http: {
  request(method: string, url: string, options?: RequestOptions): HttpResponse;
  /** A GET: a read, performed in dry-run too. */
  get(url: string, options?: Omit<RequestOptions, "body">): HttpResponse;
  /** A POST: an effect. `json` sends a value as JSON (Content-Type application/json unless set). */
  post(url: string, options?: RequestOptions & { json?: unknown }): HttpResponse;
};

/** One series of an answer. */
export interface Series {
  labels: Record<string, string>;
  /** [unix seconds, value], oldest first (one for an instant query). */
  samples: [number, number][];
  /** The newest value, or null without samples. */
  value: number | null;
}

/** What a query answered. */
export interface Answer {
  series: Series[];
  /** More series than the manifest's max_series came back; these are the first of them. */
  truncated: boolean;
  /** The newest value of the first series; null when no series came back. */
  value: number | null;
}

/** PromQL against the host's prometheus_url, with [capabilities.prometheus]. Reads. */
export const prometheus: {
  /** An instant query, now or at `time` (unix seconds). */
  query(promql: string, time?: number | null): Answer;
  /** A range query from start to end (unix seconds) every `step` seconds. */
  queryRange(promql: string, start: number, end: number, step: number): Answer;
  /** The one value of `promql` now; null when no series; more than one series throws a PluginError. */
  value(promql: string): number | null;
  /** Some series is above `threshold` now ("is the error rate still high?"). */
  anyAbove(promql: string, threshold: number): boolean;
  /** Some series is below `threshold` now ("is probe_success still below 1?"). */
  anyBelow(promql: string, threshold: number): boolean;
  /** `promql`, written as an alerting rule's expr (`probe_success == 0`), still returns a series. */
  stillFailing(promql: string): boolean;
  /** Prometheus still has alert `alertname` firing with these labels (ALERTS). */
  isFiring(alertname: string, labels?: Record<string, string>): boolean;
};

/** The plugin's own key-value store, with [capabilities.state]. set and delete are effects (not kept in dry-run). */
export const state: {
  /** The value of `key`, or null if not set (or expired). */
  get(key: string): string | null;
  /** Sets `key` to a string for `ttlSeconds` (null: the manifest's max_ttl). */
  set(key: string, value: string, ttlSeconds?: number | null): void;
  /** Removes `key`; false if it was not set. */
  delete(key: string): boolean;
};

export function inspect(name: string): ContainerInfo;
export function restart(name: string): void;
/** Sends a signal ("HUP"; "SIGHUP" is the same) the manifest lists under [capabilities] signals. An effect. */
export function signal(name: string, signal: string): void;
/** Runs argv (never a shell line) as the manifest's [[capabilities.exec]] allows. An effect. */
export function exec(name: string, argv: string[]): ExecOutput;
/** The last `tail` lines (default 100) of stdout and stderr, within [capabilities.logs]. A read. */
export function logs(name: string, tail?: number): LogTail;
/** The containers carrying a label, selector "KEY=VALUE" as the manifest lists it ("label:KEY=VALUE"). A read. */
export function listByLabel(selector: string): string[];
export function debug(message: string): void;
export function info(message: string): void;
export function warn(message: string): void;
export function error(message: string): void;
export function minUptimeSec(config: Config): number;
export function tooYoung(name: string, uptimeSeconds: number | null, minUptime: number): string | null;
export function checkUptime(name: string, minUptime: number): string | null;
export type Outcome = { tag: "acted"; val: string } | { tag: "skipped"; val: string };
export function plugin(
  handler: (alert: Alert, config: Config) => string | Skipped | null | undefined | void,
): (alert: unknown, config: [string, string][]) => Outcome;

/** What a handler may return. */
export type HandlerResult = string | Skipped | null | undefined | void;
export type Handler = (alert: Alert, config: Config) => HandlerResult;

/** The host's side as the SDK calls it (the component's imports, or a test's fakes). */
export interface Host {
  /** Labels as the WIT gives them: [key, value] pairs. */
  inspect(name: string): Omit<ContainerInfo, "labels"> & { labels: [string, string][] };
  restart(name: string): void;
  signal(name: string, signal: string): void;
  exec(name: string, argv: string[]): Omit<ExecOutput, "success">;
  logs(name: string, tail: number): LogTail;
  listByLabel(selector: string): string[];
  /** The WIT's outbound-request; answers its inbound-response (or throws its error variant as {payload: {tag, val}}). */
  httpRequest(request: {
    method: string;
    url: string;
    headers: [string, string][];
    body: Uint8Array | undefined;
    secrets: string[];
  }): { sent: boolean; status: number; headers: [string, string][]; body: Uint8Array; truncated: boolean };
  prometheusQuery(promql: string, time: number | undefined): WitAnswer;
  prometheusQueryRange(promql: string, start: number, end: number, step: number): WitAnswer;
  stateGet(key: string): string | undefined;
  stateSet(key: string, value: string, ttlSeconds: number | null): void;
  stateDelete(key: string): boolean;
  log(level: "debug" | "info" | "warn" | "error", message: string): void;
}
/** A query's answer as the WIT gives it. */
export interface WitAnswer {
  series: { labels: [string, string][]; samples: [number, number][] }[];
  truncated: boolean;
}
/** Installs `next` as the host; returns the one it replaces. */
export function setHost(next: Host): Host;

/** Thrown by answer() when the handler failed: `message` is what the host records. */
export class Failed extends Error {}
/** `handler` answered as the host would see it; a failure throws a Failed. */
export function answer(handler: Handler, alert: Alert, config: Config): Outcome;
/** A stack with its `@source.js:L:C` frames mapped back to the plugin's own files. */
export function mapStack(stack: string): string;
