//! docs/audit.md's table of event kinds, held to the code: a row for every
//! kind of `EventKind::ALL` (and none for a kind that does not exist), and
//! every field of each kind's struct named in its row (or, for a struct
//! several kinds share, in one of theirs), by its serialized name. A field or kind added without a word in the docs fails here.
//!
//! The fields come from serde itself: a struct's `Deserialize` hands the
//! deserializer the list of its field names (`deserialize_struct`), which
//! [`Capture`] keeps instead of reading anything.

use std::collections::{BTreeMap, BTreeSet};

use autoheal_core::event::*;
use serde::de::{self, Deserialize, Deserializer, Visitor};

const AUDIT_PAGE: &str = include_str!("../../../docs/audit.md");

/// A deserializer that only records which fields a struct asks for.
struct Capture<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for Capture<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields captured"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

fn fields_of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Capture(&mut fields));
    assert!(!fields.is_empty(), "{} has no fields", std::any::type_name::<T>());
    fields
}

/// The fields of each kind's struct. A match, so that a new kind does not
/// compile until it is listed here.
fn fields(kind: EventKind) -> &'static [&'static str] {
    match kind {
        EventKind::WebhookReceived => fields_of::<WebhookReceived>(),
        EventKind::DecisionSkip => fields_of::<DecisionSkip>(),
        EventKind::ActionDryRun | EventKind::ActionOk | EventKind::ActionFail | EventKind::ActionSkipped => {
            fields_of::<ActionFinished>()
        }
        EventKind::Ack => fields_of::<Ack>(),
        EventKind::WebhookRejected => fields_of::<WebhookRejected>(),
        EventKind::ActionStarted => fields_of::<ActionStarted>(),
        EventKind::CapabilityDenied => fields_of::<CapabilityDenied>(),
        EventKind::PluginLoaded | EventKind::PluginUnloaded => fields_of::<PluginInfo>(),
        EventKind::PluginRejected => fields_of::<PluginRejected>(),
        EventKind::AuthFailed => fields_of::<AuthFailed>(),
        EventKind::ModeChanged => fields_of::<ModeChanged>(),
        EventKind::RestartIntent => fields_of::<RestartIntent>(),
        EventKind::EffectIntent => fields_of::<EffectIntent>(),
        EventKind::ActionInterrupted => fields_of::<ActionInterrupted>(),
        EventKind::AuditRecovered => fields_of::<AuditRecovered>(),
        EventKind::AuditRotated => fields_of::<AuditRotated>(),
        EventKind::HostWarning => fields_of::<HostWarning>(),
        EventKind::HostStarted => fields_of::<HostStarted>(),
        EventKind::ApprovalRequested => fields_of::<ApprovalRequested>(),
        EventKind::ApprovalRecorded => fields_of::<ApprovalRecorded>(),
        EventKind::ApprovalGranted
        | EventKind::ApprovalDenied
        | EventKind::ApprovalExpired
        | EventKind::ApprovalCancelled => fields_of::<ApprovalEnded>(),
        EventKind::RemediationVerified => fields_of::<RemediationVerified>(),
        EventKind::RemediationIneffective => fields_of::<RemediationIneffective>(),
        EventKind::RemediationWatched => fields_of::<RemediationWatched>(),
        EventKind::ActionQueued => fields_of::<ActionQueued>(),
        EventKind::ActionDropped => fields_of::<ActionDropped>(),
        EventKind::PauseStarted => fields_of::<PauseStarted>(),
        EventKind::PauseEnded => fields_of::<PauseEnded>(),
        EventKind::WindowOpened => fields_of::<WindowOpened>(),
        EventKind::WindowClosed => fields_of::<WindowClosed>(),
        EventKind::AlertDeferred => fields_of::<AlertDeferred>(),
        EventKind::DeferredDue => fields_of::<DeferredDue>(),
        EventKind::SignedIn | EventKind::SignedOut => fields_of::<Signed>(),
    }
}

fn code_spans(text: &str) -> BTreeSet<String> {
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Kind → the code spans of its row's fields cell. A cell that starts "as
/// above" or "as `kind`" also names that row's fields.
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let table = AUDIT_PAGE
        .split("## Event kinds")
        .nth(1)
        .expect("docs/audit.md has an \"Event kinds\" section");
    let table = table.split("\n## ").next().unwrap_or(table);
    let mut rows: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut previous: BTreeSet<String> = BTreeSet::new();
    for line in table.lines() {
        let Some(cells) = line.trim().strip_prefix('|') else {
            continue;
        };
        let cells: Vec<&str> = cells.split('|').map(str::trim).collect();
        let [kinds, described, ..] = cells.as_slice() else {
            continue;
        };
        if kinds.starts_with("---") || *kinds == "kind" {
            continue;
        }
        let mut names = code_spans(described);
        if described.starts_with("as above") {
            names.extend(previous.iter().cloned());
        } else if let Some(rest) = described.strip_prefix("as `") {
            let other = rest.split('`').next().unwrap_or_default();
            names.extend(rows.get(other).cloned().unwrap_or_default());
        }
        for kind in code_spans(kinds) {
            rows.insert(kind, names.clone());
        }
        previous = names;
    }
    rows
}

#[test]
fn every_kind_has_a_row_and_no_row_names_a_kind_that_does_not_exist() {
    let rows = documented();
    let kinds: BTreeSet<String> = EventKind::ALL.iter().map(|k| k.as_str().to_owned()).collect();
    let missing: Vec<&String> = kinds.iter().filter(|k| !rows.contains_key(*k)).collect();
    let unknown: Vec<&String> = rows.keys().filter(|k| !kinds.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "docs/audit.md has no row for the kinds {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "docs/audit.md has rows for kinds that do not exist: {unknown:?}"
    );
}

/// Kinds that share a struct (`action_ok`, `action_fail`, …) share its
/// fields, some of which only one of them fills (`error` in `action_fail`):
/// each field is to be named in the row of at least one kind of the struct.
#[test]
fn every_field_of_every_kind_is_named_in_its_row() {
    let rows = documented();
    let mut by_struct: BTreeMap<&'static [&'static str], BTreeSet<String>> = BTreeMap::new();
    for kind in EventKind::ALL {
        let named = rows.get(kind.as_str()).cloned().unwrap_or_default();
        by_struct.entry(fields(kind)).or_default().extend(named);
    }
    let mut missing = Vec::new();
    for kind in EventKind::ALL {
        for field in fields(kind) {
            if !by_struct[fields(kind)].contains(*field) {
                missing.push(format!("{}.{field}", kind.as_str()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "docs/audit.md does not name these fields: {missing:?}"
    );
}

#[test]
fn the_fields_read_are_the_serialized_names() {
    // The capture is not vacuous: a known struct gives its known fields.
    let captured = fields(EventKind::ModeChanged);
    assert!(
        captured.contains(&"previous_dry_run") && captured.contains(&"by"),
        "{captured:?}"
    );
}

#[test]
fn the_common_fields_are_named_before_the_table() {
    let intro = AUDIT_PAGE.split("| kind |").next().expect("a table");
    let intro_spans = code_spans(intro);
    for common in ["id", "ts", "kind", "replica"] {
        assert!(
            intro_spans.contains(common),
            "docs/audit.md does not introduce `{common}`"
        );
    }
}
