"""restart-unhealthy-py: restart the containers an alert names, each only if
its health check says it is unhealthy (the Python twin of restart-unhealthy).

Config keys: `container_label` (default "container"): the alert label whose
value names the containers, comma-separated; `min_uptime_sec` (default 60):
leave alone a container that started less than this ago. Every container
must also be in the manifest's allow-list, or the host denies the calls.
"""

from autoheal_sdk import (
    Alert,
    ContainerError,
    PluginError,
    info,
    inspect,
    min_uptime_sec,
    plugin,
    restart,
    skip,
    too_young,
)


def decide(name: str, health, uptime_seconds, min_uptime: int):
    """None to restart, else why not."""
    if health is None:
        return f"{name} has no health check"
    if health != "unhealthy":
        return f"{name} is {health}"
    return too_young(name, uptime_seconds, min_uptime)


def handle(alert: Alert, config: dict):
    if not alert.is_firing:
        return skip("nothing to do: alert is resolved")
    label = config.get("container_label", "container")
    names = [n.strip() for n in alert.require_label(label).split(",") if n.strip()]
    if not names:
        raise PluginError(f"label {label!r} names no container")
    min_uptime = min_uptime_sec(config)
    done, skipped = [], []
    for name in names:
        try:
            found = inspect(name)
        except ContainerError as err:
            raise PluginError(f"cannot tell whether {name} is unhealthy: {err}") from None
        why = decide(name, found.health, found.uptime_seconds, min_uptime)
        if why:
            info(f"skipped: {why}")
            done.append(f"skipped: {why}")
            skipped.append(why)
            continue
        restart(name)
        info(f"restarted {name}: it was unhealthy")
        done.append(f"restarted {name}")
    # Only when every container was left alone did the plugin not act.
    if len(skipped) == len(names):
        return skip("; ".join(skipped))
    return "; ".join(done)


WitWorld = plugin(handle)
