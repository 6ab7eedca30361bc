// restart-unhealthy-js: restart the containers an alert names, each only if
// its health check says it is unhealthy (the JavaScript twin of
// restart-unhealthy).
//
// Config keys: container_label (default "container"): the alert label whose
// value names the containers, comma-separated; min_uptime_sec (default 60):
// leave alone a container that started less than this ago. Every container
// must also be in the manifest's allow-list, or the host denies the calls.

import { ContainerError, PluginError, info, inspect, minUptimeSec, plugin, restart, skip, tooYoung } from "autoheal-sdk";

/** null to restart, else why not. */
function decide(name, health, uptimeSeconds, minUptime) {
  if (health === null) return `${name} has no health check`;
  if (health !== "unhealthy") return `${name} is ${health}`;
  return tooYoung(name, uptimeSeconds, minUptime);
}

export const handle = plugin((alert, config) => {
  if (!alert.isFiring) return skip("nothing to do: alert is resolved");
  const label = config.container_label ?? "container";
  const names = alert.requireLabel(label).split(",").map((n) => n.trim()).filter(Boolean);
  if (names.length === 0) throw new PluginError(`label ${JSON.stringify(label)} names no container`);
  const minUptime = minUptimeSec(config);
  const done = [];
  const skipped = [];
  for (const name of names) {
    let found;
    try {
      found = inspect(name);
    } catch (e) {
      if (e instanceof ContainerError) throw new PluginError(`cannot tell whether ${name} is unhealthy: ${e.message}`);
      throw e;
    }
    const why = decide(name, found.health, found.uptimeSeconds, minUptime);
    if (why) {
      info(`skipped: ${why}`);
      done.push(`skipped: ${why}`);
      skipped.push(why);
      continue;
    }
    restart(name);
    info(`restarted ${name}: it was unhealthy`);
    done.push(`restarted ${name}`);
  }
  // Only when every container was left alone did the plugin not act.
  if (skipped.length === names.length) return skip(skipped.join("; "));
  return done.join("; ");
});
