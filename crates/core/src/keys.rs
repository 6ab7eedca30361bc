//! Cooldown keys: after an action is dispatched, the same plugin does not
//! act on the same alert again until its cooldown has passed, and in a
//! cluster the same key names the action's etcd claim. It lives here, not
//! in the host, so that the fuzz targets (which must not pull in wasmtime)
//! can check it; the host re-exports it as `remediation::cooldown::key`.
//!
//! A cooldown is keyed by plugin, alertname and the labels the manifest
//! names, `plugin|alertname|name=value|...`. Alertnames and label values
//! come from whoever sends alerts, so a value holding `|` must not be able
//! to pass for a separator: `service="a|instance=b"` with `instance="c"`
//! and `service="a"` with `instance="b|instance=c"` are two alerts, and once
//! were one key (one cooldown, one claim). Each part is therefore escaped —
//! but only where it has to be: `\` before `\` and `|` in every part, and
//! before `=` in a label's name (the first bare `=` of a label part ends its
//! name, so `=` inside a value needs nothing). Escaping rather than
//! length-prefixing keeps every key whose parts hold none of those
//! characters byte-identical to the keys earlier versions wrote, so the
//! `action_started.cooldown_key`s of an older trail still restore the
//! cooldowns they began; and keys stay readable in `GET /`, the trail and
//! etcd. (An older key whose values held `|` or `\` was ambiguous and cannot
//! be mapped back: that alert's cooldown, if it was running at the upgrade,
//! starts afresh with its next action.)

/// The cooldown key of `plugin` acting on the alert `alertname` with these
/// (label name, value) pairs, in the manifest's order: unambiguous, and
/// as earlier versions wrote it whenever no part holds `|` or `\` (nor a
/// name `=`); see the module's comment.
pub fn key<'a>(
    plugin: &str,
    alertname: &str,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut key = String::with_capacity(plugin.len() + alertname.len() + 1);
    push_escaped(&mut key, plugin, &['|']);
    key.push('|');
    push_escaped(&mut key, alertname, &['|']);
    for (name, value) in labels {
        key.push('|');
        push_escaped(&mut key, name, &['|', '=']);
        key.push('=');
        push_escaped(&mut key, value, &['|']);
    }
    key
}

/// `text` with `\` before each `\` and each of `special`.
fn push_escaped(key: &mut String, text: &str, special: &[char]) {
    for c in text.chars() {
        if c == '\\' || special.contains(&c) {
            key.push('\\');
        }
        key.push(c);
    }
}
