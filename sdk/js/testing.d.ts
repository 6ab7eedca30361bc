// Types of testing.js: fakes of the host for unit tests under `node --test`.

import { Alert, ContainerInfo, Config, ExecOutput, Failed, Handler, LogTail, Outcome } from "./autoheal-sdk";

export { Failed };

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
  /** Effects recorded, not performed; exec answers ran: false. */
  dryRun?: boolean;
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
  logs: LogCapture;
  uninstall(): void;
}

/** A firing alert with these labels. */
export function firing(labels?: Record<string, string>, annotations?: Record<string, string>): Alert;
/** A resolved alert with these labels. */
export function resolved(labels?: Record<string, string>, annotations?: Record<string, string>): Alert;

/** `handle` (what plugin() made, or a plain handler) answered as the host would see it. */
export function run(handle: Handler | ((alert: unknown, config: [string, string][]) => Outcome), alert: Alert, config?: Config): Outcome;
