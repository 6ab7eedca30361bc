// restart-on-log-pattern: restart a container only when a pattern appears in
// the last lines of its log, read through the SDK's logs() (the manifest's
// [capabilities.logs] bounds them). Otherwise it skips, saying what it read.
//
// Config keys: `container` (always this one) or `container_label` (default
// "container": the alert label naming it); `pattern` (required): a
// JavaScript regular expression tested against each line; `tail` (default
// 200): how many of the last lines to read; `min_uptime_sec` (default 60):
// leave alone a container that started less than this ago. A restarted
// container's log still holds its previous run's lines, so set
// min_uptime_sec to cover how long the old lines stay in the tail.

import { PluginError, checkUptime, info, logs, minUptimeSec, plugin, restart, skip } from "autoheal-sdk";

/** Default for `tail`. */
export const DEFAULT_TAIL = 200;
/** The most of a matching line quoted in the summary. */
const MAX_QUOTED = 200;

/** The `pattern` config key as a RegExp; a missing or invalid one fails, naming it. */
export function patternOf(config) {
  const text = config.pattern;
  if (!text || !text.trim()) throw new PluginError("config key `pattern` is required (a regular expression)");
  try {
    return new RegExp(text);
  } catch (e) {
    throw new PluginError(`config key \`pattern\` is not a regular expression: ${e.message}`);
  }
}

/** The `tail` config key: a whole number of lines, at least 1. */
export function tailOf(config) {
  const text = config.tail;
  if (text === undefined) return DEFAULT_TAIL;
  const value = /^\d+$/.test(text.trim()) ? Number(text.trim()) : 0;
  if (value < 1 || value > 0xffffffff) {
    throw new PluginError(`config key \`tail\` has invalid value ${JSON.stringify(text)} (expected a number of lines, at least 1)`);
  }
  return value;
}

/** The container the alert is about: `container`, or the label `container_label` names. */
export function containerOf(alert, config) {
  if (config.container !== undefined && config.container_label !== undefined) {
    throw new PluginError("config keys `container` and `container_label` are mutually exclusive; set only one");
  }
  if (config.container !== undefined) {
    if (!config.container.trim()) throw new PluginError("config key `container` must not be empty");
    return config.container.trim();
  }
  return alert.requireLabel(config.container_label ?? "container").trim();
}

const quoted = (text) => (text.length > MAX_QUOTED ? `${text.slice(0, MAX_QUOTED)}…` : text);

export const handle = plugin((alert, config) => {
  if (!alert.isFiring) return skip("nothing to do: alert is resolved");
  // The whole config is checked before the first host call.
  const pattern = patternOf(config);
  const tail = tailOf(config);
  const minUptime = minUptimeSec(config);
  const name = containerOf(alert, config);

  const read = logs(name, tail);
  const hit = read.lines.find((line) => pattern.test(line.text));
  if (!hit) {
    const reason = `no line of the last ${read.lines.length} of ${name}'s log matches /${pattern.source}/`;
    info(`skipped: ${reason}`);
    return skip(reason);
  }
  const young = checkUptime(name, minUptime);
  if (young) {
    info(`skipped: ${young}`);
    return skip(young);
  }
  restart(name);
  const summary = `restarted ${name}: its ${hit.source} says ${JSON.stringify(quoted(hit.text))}`;
  info(summary);
  return summary;
});
