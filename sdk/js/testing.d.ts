// Types of testing.js: fakes of the host for unit tests under `node --test`.

import {
  Alert,
  ContainerInfo,
  Config,
  ExecOutput,
  Failed,
  Handler,
  Headers,
  HttpError,
  HttpResponse,
  LogTail,
  Outcome,
  PrometheusError,
  StateError,
  WitAnswer,
} from "./autoheal-sdk";

export { Failed, HttpError, HttpResponse, PrometheusError, StateError };

/** A seeded container: what inspect() tells of it, logs() and exec() answer. */
export interface FakeContainer extends ContainerInfo {
  /** What logs() answers from, oldest first. */
  output: ["stdout" | "stderr", string][];
  /** What exec() of an argv (its words joined by spaces) answers; unscripted: exit 0, no output. */
  execs: Record<string, Partial<Omit<ExecOutput, "success">>>;
}

/** A seeded container (running an hour, no labels, no output unless `fields` say otherwise). */
export function container(name: string, fields?: Partial<FakeContainer>): FakeContainer;

export interface FakeOptions {
  /** The manifest's allow-list: any other container is `denied` (null: all allowed). */
  allowed?: string[] | null;
  /** Containers whose calls fail with a runtime error, and its text. */
  failing?: Record<string, string>;
  /** The manifest's signals ("HUP"): any other is denied (null: all allowed). */
  signals?: string[] | null;
  /** The manifest's exec commands, exact argv arrays: any other is denied (null: all allowed). */
  commands?: string[][] | null;
  /** Effects recorded, not performed; exec answers ran: false; an HTTP effect sent: false; state writes not kept. */
  dryRun?: boolean;
  /** Scripted HTTP (absent: no [capabilities.http], every request denied). */
  http?: FakeHttp | Record<string, HttpAnswer> | null;
  /** Scripted PromQL (absent: no [capabilities.prometheus], denied). */
  prometheus?: FakePrometheus | Record<string, PromAnswer> | null;
  /** The store's starting values (absent: no [capabilities.state], denied). */
  state?: FakeState | Record<string, string> | null;
}

/** Seeded containers; every call is recorded in `calls` as [capability, name]. */
export class FakeContainers {
  constructor(containers?: FakeContainer[], options?: FakeOptions);
  calls: [string, string][];
  readonly restarted: string[];
  /** The signals sent (in dry-run: recorded), as [name, signal without SIG]. */
  signalled: [string, string][];
  /** The commands run (in dry-run: recorded), as [name, argv]. */
  executed: [string, string[]][];
  inspect(name: string): Omit<ContainerInfo, "labels"> & { labels: [string, string][] };
  restart(name: string): void;
  signal(name: string, signal: string): void;
  exec(name: string, argv: string[]): Omit<ExecOutput, "success">;
  logs(name: string, tail: number): LogTail;
  listByLabel(selector: string): string[];
}

/** A scripted HTTP answer. */
export function response(status: number, body?: string | Uint8Array, fields?: { headers?: Headers; truncated?: boolean }): HttpResponse;

/** A request the plugin made, as the fake received it. */
export interface RecordedRequest {
  method: string;
  url: string;
  headers: [string, string][];
  body: Uint8Array | null;
  /** The secret names it asked for (the fake has no values). */
  secrets: string[];
  text(): string;
}

/** What a "METHOD URL-PREFIX" answers: a response, an error to throw, or a function of the request. */
export type HttpAnswer = HttpResponse | HttpError | ((request: RecordedRequest) => HttpResponse);

/** Scripted HTTP answers by "METHOD URL-PREFIX" (longest prefix wins); outside allow or secrets: denied. */
export class FakeHttp {
  constructor(answers?: Record<string, HttpAnswer> | null, options?: { allow?: string[] | null; secrets?: string[] | null; dryRun?: boolean });
  requests: RecordedRequest[];
  /** The requests made, as [method, url]. */
  readonly calls: [string, string][];
  dryRun: boolean;
}

/** A series with these labels and one sample. */
export function series(labels: Record<string, string>, value: number, at?: number): { labels: Record<string, string>; samples: [number, number][] };

/** What a query answers: series, one number, null (no series), an answer, or an error to throw. */
export type PromAnswer =
  | { labels?: Record<string, string>; samples: [number, number][] }[]
  | number
  | null
  | { series: { labels?: Record<string, string>; samples: [number, number][] }[]; truncated?: boolean }
  | PrometheusError;

/** Scripted PromQL answers by exact query; not scripted: failed; allowed: false: denied. */
export class FakePrometheus {
  constructor(answers?: Record<string, PromAnswer> | null, options?: { allowed?: boolean });
  /** ["query", promql, time | null] or ["queryRange", promql, start, end, step]. */
  calls: (string | number | null)[][];
  readonly queries: string[];
  query(promql: string, time: number | undefined): WitAnswer;
  queryRange(promql: string, start: number, end: number, step: number): WitAnswer;
}

/** The plugin's store as an object: starts as given, read at the end. */
export class FakeState {
  constructor(
    values?: Record<string, string> | null,
    options?: { maxKeys?: number; maxValueBytes?: number; allowed?: boolean; dryRun?: boolean },
  );
  values: Record<string, string>;
  ttls: Record<string, number | null>;
  /** ["get", key], ["set", key, value, ttl], ["delete", key]. */
  calls: (string | number | null)[][];
  dryRun: boolean;
}

/** The plugin's log lines, as [level, message]. */
export class LogCapture {
  lines: [string, string][];
  messages(level?: string | null): string[];
}

/** Both fakes, installed as the SDK's host until uninstall(). */
export class FakeHost {
  constructor(containers?: FakeContainer[], options?: FakeOptions);
  static install(containers?: FakeContainer[], options?: FakeOptions): FakeHost;
  containers: FakeContainers;
  http: FakeHttp;
  prometheus: FakePrometheus;
  state: FakeState;
  logs: LogCapture;
  uninstall(): void;
}

/** A firing alert with these labels. */
export function firing(labels?: Record<string, string>, annotations?: Record<string, string>): Alert;
/** A resolved alert with these labels. */
export function resolved(labels?: Record<string, string>, annotations?: Record<string, string>): Alert;

/** `handle` (what plugin() made, or a plain handler) answered as the host would see it. */
export function run(handle: Handler | ((alert: unknown, config: [string, string][]) => Outcome), alert: Alert, config?: Config): Outcome;
