//! Fuzz targets for the input autoheal does not control: what a sender
//! posts, what a plugin author writes, what an operator types, and what a
//! crash or a full disk leaves in the trail.
//!
//! Each target takes arbitrary bytes and panics when a property fails, not
//! only when the parser does: a parser that accepts something it then
//! cannot honour is a bug too. The fuzzer binaries (`fuzz_targets/`) are one
//! line each; `tests/corpus.rs` replays the committed corpus through these
//! same functions on every `cargo xtask test`. `cargo xtask fuzz` runs them.

#![warn(missing_docs)]

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::OnceLock;

use autoheal_core::alert::WebhookPayload;
use autoheal_core::audit::{
    AuditFilter, AuditLog, AuditQuery, FsyncPolicy, line_has_kind, line_ts, read_tail, recover,
    scan_backwards,
};
use autoheal_core::event::{Event, EventKind};
use autoheal_core::keys;
use autoheal_core::matcher::parse_matchers;
use autoheal_core::proof::{ClusterSecret, PEER_WINDOW_SEC, RemoteAnswer};
use autoheal_core::util::parse_duration;
use autoheal_manifest::{
    HttpRule, HttpUrl, LABEL_PREFIX, LabelSelector, MAX_CONCURRENT, MAX_COOLDOWN, MAX_HTTP_BYTES,
    MAX_QUERY_BYTES, MAX_SERIES, MAX_TIMEOUT, Manifest, ManifestBounds, Unresolved, UrlHost,
    is_container_name, is_container_target, is_engine_name, is_secret_name, resolve_container, split_target,
};

/// A fuzz target: arbitrary bytes in, a panic when a property fails.
pub type Target = fn(&[u8]);

/// Every target by name: the corpus of `NAME` is `fuzz/corpus/NAME/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("webhook", webhook),
    ("manifest", manifest),
    ("duration", duration),
    ("matchers", matchers),
    ("audit_query", audit_query),
    ("audit_recovery", audit_recovery),
    ("audit_line", audit_line),
    ("audit_index", audit_index),
    ("cooldown_key", cooldown_key),
    ("approval_answer", approval_answer),
    ("peer_request", peer_request),
    ("http_url", http_url),
];

/// `POST /alert`'s body. Every accepted alert gets a fingerprint that is
/// stable, and Alertmanager's zero end time reads as "no end".
pub fn webhook(data: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<WebhookPayload>(data) else {
        return;
    };
    for mut alert in payload.alerts {
        let sent = alert.fingerprint.clone();
        alert.ensure_fingerprint();
        assert!(!alert.fingerprint.is_empty());
        if !sent.is_empty() {
            assert_eq!(alert.fingerprint, sent, "a sender's fingerprint is kept");
        } else {
            let mut again = alert.clone();
            again.fingerprint.clear();
            again.ensure_fingerprint();
            assert_eq!(again.fingerprint, alert.fingerprint, "fingerprints are stable");
        }
        if let Some(end) = &alert.ends_at {
            assert!(!end.is_empty() && !end.starts_with("0001-01-01"));
        }
    }
}

/// A plugin's `NAME.toml`. What it accepts is within every bound the
/// sandbox relies on.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let bounds = ManifestBounds { max_memory_mb: 64 };
    let Ok(m) = Manifest::parse("fuzz.toml", text, bounds) else {
        return;
    };
    assert!(!m.name.is_empty() && !m.version.trim().is_empty());
    assert!(!m.component.is_empty() && !m.component.contains(['/', '\\', '\0']));
    assert!(m.component != "." && m.component != "..");
    assert!(!m.timeout.is_zero() && m.timeout <= MAX_TIMEOUT);
    assert!(m.memory_bytes > 0 && m.memory_bytes <= 64 << 20);
    assert!(m.cooldown.is_none_or(|c| c <= MAX_COOLDOWN));
    assert!((1..=MAX_CONCURRENT).contains(&m.max_concurrent));
    assert!(m.sha256.as_ref().is_none_or(|h| h.len() == 64));
    for container in &m.containers {
        // `label:KEY=VALUE` allows every container carrying that label: a
        // selector that parses and shows itself back, not a name.
        if let Some(selector) = container.strip_prefix(LABEL_PREFIX) {
            let parsed = LabelSelector::parse(selector).expect("an allowed selector parses");
            assert_eq!(parsed.to_string(), selector, "{container:?}");
            continue;
        }
        // Today's rule: `NAME` on the default engine or `ENGINE/NAME` on an
        // `[engines]` one. Every entry is a target the capability gate
        // passes (it checks `is_container_target` before the allow-list),
        // so an allowed entry is never refused as malformed at 3 a.m.
        assert!(is_container_target(container), "{container:?} allowed");
        let (engine, name) = split_target(container);
        assert!(engine.is_none_or(is_engine_name), "{container:?}: engine");
        assert!(is_container_name(name), "{container:?}: container name");
        // Named exactly, an entry resolves to itself (the name the engine,
        // the breaker and the audit see), whatever else is allowed.
        assert_eq!(
            resolve_container(&m.containers, container),
            Ok(container.as_str())
        );
        assert!(m.allows_container(container));
        // Named bare, it resolves to the one entry with that container name
        // (a bare entry first), or is ambiguous between several engines'.
        match resolve_container(&m.containers, name) {
            Ok(entry) => {
                assert_eq!(split_target(entry).1, name);
                assert!(entry == name || !m.containers.iter().any(|c| c == name));
            }
            Err(Unresolved::Ambiguous(entries)) => {
                assert!(entries.len() >= 2 && !m.containers.iter().any(|c| c == name));
                assert!(entries.iter().all(|e| split_target(e).1 == name));
            }
            Err(Unresolved::NotAllowed) => panic!("{name:?} of {container:?} is not allowed bare"),
        }
        // A restart must fit in the deadline, with time to spare.
        assert!(m.stop_timeout < m.timeout);
    }
    // The network sections: every bound within its cap and the plugin's
    // deadline, every allow-list prefix a URL as the gate normalises it.
    if let Some(http) = &m.http_grant {
        assert!(!http.timeout.is_zero() && http.timeout <= m.timeout);
        assert!((1..=MAX_HTTP_BYTES).contains(&http.max_response_bytes));
        assert!((1..=MAX_HTTP_BYTES).contains(&http.max_request_bytes));
        for rule in &http.rules {
            assert_eq!(HttpUrl::parse(&written(&rule.prefix)).as_ref(), Ok(&rule.prefix));
            assert!(rule.allows(&rule.method, &rule.prefix), "{rule:?} allows itself");
        }
        for (name, placement) in &http.secrets {
            assert!(is_secret_name(name), "{name:?}");
            assert!(placement.template.contains("{}"), "{placement:?}");
        }
    }
    if let Some(prometheus) = &m.prometheus {
        assert!(!prometheus.timeout.is_zero() && prometheus.timeout <= m.timeout);
        assert!((1..=MAX_SERIES).contains(&prometheus.max_series));
        assert!((1..=MAX_QUERY_BYTES).contains(&prometheus.max_bytes));
    }
    if let Some(state) = &m.state {
        assert!(state.max_keys > 0 && state.max_value_bytes > 0 && !state.max_ttl.is_zero());
    }
}

/// A URL as `HttpUrl::parse` would read back what it normalised.
fn written(url: &HttpUrl) -> String {
    format!("{}{}", url.origin(), url.target)
}

/// A URL in `[capabilities.http] allow` or an `http.request` call: one
/// normalisation that the allow-list and every call share. What parses is
/// its own normal form (parsed again, it is the same URL), names no
/// userinfo and no dot segment, keeps its host in one spelling, allows
/// itself as a prefix, and records no query value.
pub fn http_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(url) = HttpUrl::parse(text) else {
        return;
    };
    assert!(url.scheme == "http" || url.scheme == "https");
    // Percent-encoding may lengthen it past the bound on URLs: refused
    // then, as too long, and never read as another URL.
    let again = written(&url);
    match HttpUrl::parse(&again) {
        Err(e) if again.len() > text.len() && e.contains("bytes; at most") => {}
        reread => assert_eq!(reread.as_ref(), Ok(&url), "{text:?}"),
    }
    let origin = url.origin();
    assert!(!origin.contains('@'), "{text:?}: userinfo in {origin}");
    if let UrlHost::Name(name) = &url.host {
        assert_eq!(*name, name.to_ascii_lowercase(), "{text:?}");
        assert!(
            name.parse::<std::net::IpAddr>().is_err(),
            "{text:?}: an address read as a name"
        );
    }
    assert!(
        !url.path.split('/').any(|s| s == "." || s == ".."),
        "{text:?}: a dot segment in {:?}",
        url.path
    );
    let rule = HttpRule {
        method: "GET".into(),
        prefix: url.clone(),
    };
    assert!(rule.allows("GET", &url) && !rule.allows("POST", &url));
    let redacted = url.redacted();
    for pair in url.query.iter().flat_map(|q| q.split('&')) {
        if let Some((key, value)) = pair.split_once('=')
            && !value.is_empty()
        {
            assert!(redacted.contains(&format!("{key}=[…]")), "{text:?}: {redacted}");
        }
    }
}

/// `30m`, `2h`, `1d`: cooldowns, `--for`, `ack_max_duration`. What parses
/// is shown back to people in the same units and must mean the same.
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = parse_duration(text) else {
        return;
    };
    let shown = humantime::format_duration(parsed).to_string();
    assert_eq!(
        parse_duration(&shown).ok(),
        Some(parsed),
        "{text:?} shown as {shown:?}"
    );
}

/// An ack's `labels`: never a silence without an equality matcher, and the
/// matchers as shown in the `ack` event read back to the same silence.
pub fn matchers(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = parse_matchers(text) else {
        return;
    };
    assert!(
        parsed
            .iter()
            .any(|m| m.is_equal && !m.is_regex && !m.value.is_empty())
    );
    for m in &parsed {
        assert!(!m.name.is_empty() && !m.name.starts_with(|c: char| c.is_ascii_digit()));
        assert!(m.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }
    let shown: Vec<String> = parsed.iter().map(ToString::to_string).collect();
    assert_eq!(
        parse_matchers(&shown.join(", ")).as_ref(),
        Ok(&parsed),
        "{text:?} shown as {shown:?}"
    );
}

/// `GET /audit`'s query string, then the read it asks for on a small trail:
/// never more than `n` events, and only events the filter matches.
pub fn audit_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = AuditQuery::parse(Some(text)) else {
        return;
    };
    assert!(query.n <= autoheal_core::audit::AUDIT_MAX_N);
    assert!(query.filter.since.is_none_or(f64::is_finite));
    assert!(
        query
            .filter
            .kinds
            .iter()
            .all(|k| !k.is_empty() && !k.contains(','))
    );
    let events = read_tail(sample_trail(), &query.filter, query.n).expect("the sample trail reads");
    assert!(events.len() <= query.n);
    for event in &events {
        let field = |key: &str| event.get(key).and_then(|v| v.as_str());
        if !query.filter.kinds.is_empty() {
            assert!(
                query
                    .filter
                    .kinds
                    .iter()
                    .any(|k| Some(k.as_str()) == field("kind"))
            );
        }
        if let Some(alertname) = &query.filter.alertname {
            assert_eq!(field("alertname"), Some(alertname.as_str()));
        }
        if let Some(since) = query.filter.since {
            assert!(event["ts"].as_f64().is_some_and(|ts| ts >= since));
        }
    }
}

/// A trail left by a crash, a full disk or someone's editor: opening it
/// keeps every complete line in place, moves only the rest aside (nothing
/// is dropped), and finds the id the next event must exceed.
pub fn audit_recovery(data: &[u8]) {
    let path = scratch_dir().join("audit.jsonl");
    std::fs::write(&path, data).expect("scratch file writes");
    let found = recover(&path).expect("recovery of a readable file succeeds");
    let kept = std::fs::read(&path).expect("scratch file reads");
    assert!(data.starts_with(&kept), "recovery only cuts the tail");
    assert!(
        kept.is_empty() || kept.ends_with(b"\n"),
        "the trail ends on a line"
    );
    match &found.torn_tail {
        None => assert_eq!(kept.len(), data.len()),
        Some(torn) => {
            let aside = std::fs::read(&torn.set_aside).expect("set-aside file reads");
            std::fs::remove_file(&torn.set_aside).expect("set-aside file removes");
            assert_eq!(aside, data[kept.len()..], "what is cut is set aside, whole");
            assert_eq!(torn.bytes, aside.len() as u64);
        }
    }
    // Backwards, line by line, as start-up and `/audit` read it.
    let mut backwards = Vec::new();
    scan_backwards(&path, |line| {
        backwards.push(line.to_vec());
        ControlFlow::Continue(())
    })
    .expect("the kept trail reads");
    backwards.reverse();
    let forwards: Vec<&[u8]> = kept
        .strip_suffix(b"\n")
        .map(|k| k.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect())
        .unwrap_or_default();
    assert_eq!(
        backwards, forwards,
        "the backward scan sees every non-empty line once"
    );
    let last_id = forwards
        .iter()
        .rev()
        .find_map(|line| {
            serde_json::from_slice::<serde_json::Value>(line)
                .ok()?
                .get("id")?
                .as_u64()
        })
        .unwrap_or(0);
    assert_eq!(found.last_id, last_id);
}

/// One event as the writer puts it on a line: it reads back as the same
/// event, and the cheap scanners start-up uses (no JSON parse) agree with a
/// full parse of it.
pub fn audit_line(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Event>(data) else {
        return;
    };
    let line = serde_json::to_string(&event).expect("events serialize");
    let back: Event = serde_json::from_str(&line).expect("a written line reads back");
    assert_eq!(back, event);
    assert_eq!(serde_json::to_string(&back).expect("events serialize"), line);
    for kind in EventKind::ALL {
        assert_eq!(
            line_has_kind(line.as_bytes(), &[kind.as_str()]),
            kind == event.kind(),
            "{kind:?} in {line}"
        );
    }
    assert_eq!(line_ts(line.as_bytes()), Some(event.ts), "{line}");
}

/// A `GET /audit` query (the first line) on a trail of any bytes (the
/// rest): what the trail's index answers, from lines it proposes, is
/// exactly what parsing every line of the file answers. `since` is kept only
/// where the trail is in time order, which is what it assumes.
pub fn audit_index(data: &[u8]) {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(text) = std::str::from_utf8(&data[..newline]) else {
        return;
    };
    let Ok(mut query) = AuditQuery::parse(Some(text)) else {
        return;
    };
    let trail = &data[newline + 1..];
    // Complete, non-empty lines, oldest first.
    let complete = &trail[..trail.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1)];
    let lines: Vec<&[u8]> = complete
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if !in_time_order(&lines) {
        query.filter.since = None;
    }
    let path = scratch_dir().join("indexed.jsonl");
    std::fs::write(&path, trail).expect("the trail writes");
    let (log, _) = AuditLog::open(&path, FsyncPolicy::Never, None).expect("the trail opens");
    let indexed: Vec<serde_json::Value> = log
        .read_tail(&query.filter, query.n)
        .expect("the trail reads")
        .iter()
        .map(|line| serde_json::from_str(line.get()).expect("an answered line is JSON"))
        .collect();
    assert_eq!(
        indexed,
        parse_every_line(&lines, &query.filter, query.n),
        "{text}"
    );
}

/// Every line an object whose `ts`, read from its bytes or parsed, is the
/// same number, never smaller than the line's before it.
fn in_time_order(lines: &[&[u8]]) -> bool {
    let mut last = f64::NEG_INFINITY;
    lines.iter().all(|line| {
        let parsed = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("ts")?.as_f64());
        match (parsed, line_ts(line)) {
            (Some(ts), Some(bytes)) if ts == bytes && ts >= last => {
                last = ts;
                true
            }
            _ => false,
        }
    })
}

/// `GET /audit` as it was before the index and the byte-level looks:
/// every line parsed, newest first, until `n` match or one is older than `since`.
fn parse_every_line(lines: &[&[u8]], filter: &AuditFilter, n: usize) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    for line in lines.iter().rev() {
        if found.len() >= n {
            break;
        }
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(since) = filter.since
            && event.get("ts").and_then(|ts| ts.as_f64()).unwrap_or(0.0) < since
        {
            break;
        }
        let field = |key: &str| event.get(key).and_then(|v| v.as_str());
        let kind = filter.kinds.is_empty() || filter.kinds.iter().any(|k| Some(k.as_str()) == field("kind"));
        let alertname = filter
            .alertname
            .as_deref()
            .is_none_or(|name| field("alertname") == Some(name));
        let contains = filter.contains.as_ref().is_none_or(|needle| {
            String::from_utf8_lossy(line)
                .to_lowercase()
                .contains(&needle.to_lowercase())
        });
        if kind && alertname && contains {
            found.push(event);
        }
    }
    found.reverse();
    found
}

/// One alert as a cooldown key sees it: plugin, alertname, labels.
type KeyParts = (String, String, Vec<(String, String)>);

/// Cooldown (and claim) keys of alerts whose names and values a sender
/// chooses. The input is one or two alerts, a line each, their parts
/// separated by NUL: plugin, alertname, then label name and value in turn
/// (a missing last value is empty). The key escapes `\`, `|` and a name's
/// `=` and passes every other character through alike, so that no part
/// can hold NUL (nor, in the first alert, a newline) loses nothing.
///
/// No two alerts share a key: the key reads back (by [`parse_key`], written
/// from the format, not from the encoder) as the very parts it was made of,
/// and two different alerts of the input get different keys. Where no part
/// holds `|` or `\` (nor a name `=`), the key is byte for byte the
/// unescaped `plugin|alertname|name=value` that earlier versions wrote, so
/// an older trail's keys still restore their cooldowns.
pub fn cooldown_key(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let alerts: Vec<KeyParts> = text.splitn(2, '\n').map(key_parts).collect();
    let made: Vec<String> = alerts
        .iter()
        .map(|(plugin, alertname, labels)| {
            keys::key(
                plugin,
                alertname,
                labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            )
        })
        .collect();
    for (parts, key) in alerts.iter().zip(&made) {
        assert_eq!(parse_key(key).as_ref(), Some(parts), "{key:?}");
        let (plugin, alertname, labels) = parts;
        let plain = |t: &str| !t.contains(['|', '\\']);
        if plain(plugin)
            && plain(alertname)
            && labels
                .iter()
                .all(|(n, v)| plain(n) && !n.contains('=') && plain(v))
        {
            let mut old = format!("{plugin}|{alertname}");
            for (name, value) in labels {
                old.push_str(&format!("|{name}={value}"));
            }
            assert_eq!(key, &old, "a key of plain parts is as earlier versions wrote it");
        }
    }
    if let [a, b] = alerts.as_slice() {
        assert_eq!(a == b, made[0] == made[1], "{a:?} and {b:?}");
    }
}

fn key_parts(line: &str) -> KeyParts {
    let mut parts = line.split('\0').map(str::to_owned);
    let plugin = parts.next().unwrap_or_default();
    let alertname = parts.next().unwrap_or_default();
    let mut labels = Vec::new();
    while let Some(name) = parts.next() {
        labels.push((name, parts.next().unwrap_or_default()));
    }
    (plugin, alertname, labels)
}

/// A key read back by its format alone: parts split at each `|` not after
/// an escaping `\`, a label part at its first such `=`, and `\x` read as
/// `x`. `None` for what no key can be (a dangling `\`, a label without `=`).
fn parse_key(key: &str) -> Option<KeyParts> {
    // Each part as (text, where its first bare `=` was), unescaped.
    let mut parts: Vec<(String, Option<usize>)> = vec![(String::new(), None)];
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        let (part, equals) = parts.last_mut().expect("one part at least");
        match c {
            '\\' => part.push(chars.next()?),
            '|' => parts.push((String::new(), None)),
            '=' if equals.is_none() => {
                *equals = Some(part.len());
                part.push('=');
            }
            c => part.push(c),
        }
    }
    let mut parts = parts.into_iter();
    let plugin = parts.next()?.0;
    let alertname = parts.next()?.0;
    let labels = parts
        .map(|(part, equals)| {
            let at = equals?;
            Some((part[..at].to_owned(), part[at + 1..].to_owned()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((plugin, alertname, labels))
}

/// The cluster secret the proof targets sign with; the fuzzer never sees it
/// (it is a MAC key, never compared with input), so what it writes cannot
/// carry a valid proof unless the MAC is broken.
fn fuzz_secret() -> ClusterSecret {
    ClusterSecret::new(b"autoheal fuzz cluster secret, 32+ bytes".to_vec())
}

/// The approval the answers are for.
const APPROVAL_ID: &str = "a-1700000000-1";

/// Up to this many positions of a signed value are each changed once.
const CHANGED_POSITIONS: usize = 256;

/// `value` with one byte changed at each of (up to [`CHANGED_POSITIONS`])
/// positions, one at a time: a different bit each time, chosen by `seed`
/// and the position, so that runs together change every bit.
fn each_changed(value: &[u8], seed: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
    let step = value.len().div_ceil(CHANGED_POSITIONS).max(1);
    (seed % step..value.len()).step_by(step).map(move |at| {
        let mut changed = value.to_vec();
        changed[at] ^= 1 << ((at + seed) % 8);
        changed
    })
}

/// An answer to an approval as read from etcd (`answers/ID`), which anyone
/// who can write to etcd can write. The input itself never verifies: only
/// the cluster secret makes a proof. Then the input's answer (if it is one)
/// as a replica writes it, signed: it verifies, as exactly what was
/// signed; not for another approval nor under another secret; and with any
/// one byte changed, it is refused or is still the same answer — bytes
/// outside what the owner applies (an unknown key, a hex digit's case in
/// the proof) may change, but never what is applied.
pub fn approval_answer(data: &[u8]) {
    let secret = fuzz_secret();
    assert!(
        RemoteAnswer::read(&secret, APPROVAL_ID, data).is_err(),
        "bytes not signed with the cluster secret verify"
    );
    let Ok(mut answer) = serde_json::from_slice::<RemoteAnswer>(data) else {
        return;
    };
    answer.proof = secret.sign_answer(APPROVAL_ID, &answer.fields());
    let Ok(written) = serde_json::to_vec(&answer) else {
        return;
    };
    let read = RemoteAnswer::read(&secret, APPROVAL_ID, &written).expect("a signed answer verifies");
    assert_same_answer(&read, &answer);
    assert!(RemoteAnswer::read(&secret, "a-1700000000-2", &written).is_err());
    let other = ClusterSecret::new(b"another cluster's secret, 32+ bytes".to_vec());
    assert!(RemoteAnswer::read(&other, APPROVAL_ID, &written).is_err());
    for changed in each_changed(&written, data.len()) {
        if let Ok(read) = RemoteAnswer::read(&secret, APPROVAL_ID, &changed) {
            assert_same_answer(&read, &answer);
        }
    }
}

/// Everything the owner applies is the same (the time to the bit).
fn assert_same_answer(read: &RemoteAnswer, signed: &RemoteAnswer) {
    assert_eq!(
        (
            read.grant,
            &read.by,
            &read.comment,
            &read.via,
            read.at.to_bits(),
            &read.principal
        ),
        (
            signed.grant,
            &signed.by,
            &signed.comment,
            &signed.via,
            signed.at.to_bits(),
            &signed.principal
        ),
    );
}

/// A replica's request to a peer (`GET /audit` of its trail), whose header
/// anyone who can reach the peer can write. The input as a header never
/// verifies. Then a request whose method (the first line) and path (the
/// rest) the input gives, signed: it verifies within the time window and
/// not past it; not for another method, path or secret; and with any one
/// byte of the header changed it is refused, unless the change kept every
/// word (a blank for another blank, a hex digit's case).
pub fn peer_request(data: &[u8]) {
    const NOW: i64 = 1_700_000_000;
    let secret = fuzz_secret();
    let text = String::from_utf8_lossy(data);
    assert!(
        !secret.verify_request(&text, "GET", "/audit?n=5", NOW),
        "a header not signed with the cluster secret verifies"
    );
    let (method, path) = text.split_once('\n').unwrap_or((&text, "/"));
    let header = secret.sign_request(method, path, NOW);
    for now in [NOW - PEER_WINDOW_SEC, NOW, NOW + PEER_WINDOW_SEC] {
        assert!(secret.verify_request(&header, method, path, now));
    }
    for now in [NOW - PEER_WINDOW_SEC - 1, NOW + PEER_WINDOW_SEC + 1] {
        assert!(!secret.verify_request(&header, method, path, now));
    }
    assert!(!secret.verify_request(&header, &format!("{method}X"), path, NOW));
    assert!(!secret.verify_request(&header, method, &format!("{path}X"), NOW));
    let other = ClusterSecret::new(b"another cluster's secret, 32+ bytes".to_vec());
    assert!(!other.verify_request(&header, method, path, NOW));
    // `v1`, the time and the MAC; the MAC's hex digits in either case.
    let words = |h: &str| -> Vec<String> {
        h.split_whitespace()
            .enumerate()
            .map(|(i, w)| {
                if i == 2 {
                    w.to_ascii_lowercase()
                } else {
                    w.to_owned()
                }
            })
            .collect()
    };
    for changed in each_changed(header.as_bytes(), data.len()) {
        let Ok(changed) = String::from_utf8(changed) else {
            continue;
        };
        if secret.verify_request(&changed, method, path, NOW) {
            assert_eq!(words(&changed), words(&header), "{changed:?} verifies");
        }
    }
}

/// A directory of this process's own, on tmpfs where there is one: each
/// target overwrites its one file there. The replay test removes it.
pub fn scratch_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("autoheal-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

/// Forty events of three kinds and two alertnames, one second apart.
fn sample_trail() -> &'static PathBuf {
    static TRAIL: OnceLock<PathBuf> = OnceLock::new();
    TRAIL.get_or_init(|| {
        let path = scratch_dir().join("sample.jsonl");
        let mut text = String::new();
        for id in 1..=40u64 {
            let kind = ["decision_skip", "action_ok", "webhook_received"][id as usize % 3];
            let alertname = ["CrmDown", "DiskFull"][id as usize % 2];
            text.push_str(&format!(
                r#"{{"id":{id},"ts":{ts},"kind":"{kind}","alertname":"{alertname}","detail":"event {id}"}}"#,
                ts = 1_700_000_000 + id
            ));
            text.push('\n');
        }
        std::fs::write(&path, text).expect("sample trail writes");
        path
    })
}
