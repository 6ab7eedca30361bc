// Types of testing.js: fakes of the host for unit tests under `node --test`.

import { Alert, ContainerInfo, Config, Failed, Handler, Outcome } from "./autoheal-sdk";

export { Failed };

/** A seeded container, as inspect() tells of it (running an hour unless `fields` say otherwise). */
export function container(name: string, fields?: Partial<ContainerInfo>): ContainerInfo;

export interface FakeOptions {
  /** The manifest's allow-list: any other container is `denied` (null: all allowed). */
  allowed?: string[] | null;
  /** Containers whose calls fail with a runtime error, and its text. */
  failing?: Record<string, string>;
}

/** Seeded containers; every call is recorded in `calls` as [capability, name]. */
export class FakeContainers {
  constructor(containers?: ContainerInfo[], options?: FakeOptions);
  calls: [string, string][];
  readonly restarted: string[];
  inspect(name: string): ContainerInfo;
  restart(name: string): void;
}

/** The plugin's log lines, as [level, message]. */
export class LogCapture {
  lines: [string, string][];
  messages(level?: string | null): string[];
}

/** Both fakes, installed as the SDK's host until uninstall(). */
export class FakeHost {
  constructor(containers?: ContainerInfo[], options?: FakeOptions);
  static install(containers?: ContainerInfo[], options?: FakeOptions): FakeHost;
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
