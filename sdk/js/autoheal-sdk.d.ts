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
  log(level: "debug" | "info" | "warn" | "error", message: string): void;
}
/** Installs `next` as the host; returns the one it replaces. */
export function setHost(next: Host): Host;

/** Thrown by answer() when the handler failed: `message` is what the host records. */
export class Failed extends Error {}
/** `handler` answered as the host would see it; a failure throws a Failed. */
export function answer(handler: Handler, alert: Alert, config: Config): Outcome;
/** A stack with its `@source.js:L:C` frames mapped back to the plugin's own files. */
export function mapStack(stack: string): string;
