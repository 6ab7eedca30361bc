//! What one published approval may weigh. A listing holds the alert (its
//! labels and annotations, each up to `max_label_bytes`), the preview and the
//! capability calls, so it can run to hundreds of KiB; published as is, a
//! few of them pass etcd's request limit (1.5 MiB by default) or the 4 MiB
//! a client takes in one response, and every publish or list fails. A
//! listing past [`MAX_PUBLISHED_APPROVAL_BYTES`] is cut: long strings and
//! long lists first, then down to its identifying fields, and says so with
//! `truncated: true`. The owner's own `GET /approvals` lists it whole.

use serde_json::{Map, Value};

use autoheal_core::util::truncate_with_marker;

/// Largest approval published to etcd, as JSON.
pub const MAX_PUBLISHED_APPROVAL_BYTES: usize = 8 * 1024;

/// Ever shorter strings and lists, tried in turn.
const CUTS: [(usize, usize); 3] = [(1024, 32), (256, 8), (64, 2)];

/// The fields kept when no cut is small enough: enough to find it and
/// answer it from any replica.
const SUMMARY_FIELDS: [&str; 10] = [
    "approval",
    "alertname",
    "plugin",
    "plugin_version",
    "fingerprint",
    "cooldown_key",
    "requested_at",
    "expires_at",
    "replica",
    "summary",
];

/// `listing`, cut until its JSON is at most [`MAX_PUBLISHED_APPROVAL_BYTES`].
pub fn fit(listing: Value) -> Value {
    if size(&listing) <= MAX_PUBLISHED_APPROVAL_BYTES {
        return listing;
    }
    for (max_string, max_items) in CUTS {
        let mut cut = cut_listing(&listing, max_string, max_items);
        cut["truncated"] = Value::Bool(true);
        if size(&cut) <= MAX_PUBLISHED_APPROVAL_BYTES {
            return cut;
        }
    }
    // Ten fields of at most 64 bytes each (strings; empty lists and maps)
    // always fit.
    let mut summary = Map::new();
    for field in SUMMARY_FIELDS {
        if let Some(value) = listing.get(field) {
            summary.insert(field.to_owned(), cut(value, 64, 0));
        }
    }
    summary.insert("truncated".to_owned(), Value::Bool(true));
    Value::Object(summary)
}

fn size(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |json| json.len())
}

/// `value` with strings (and keys) of at most `max_string` bytes and lists
/// and maps of at most `max_items` entries (the first ones); the listing's
/// own fields are all kept, as readers expect them.
fn cut_listing(listing: &Value, max_string: usize, max_items: usize) -> Value {
    match listing {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, item)| (key.clone(), cut(item, max_string, max_items)))
                .collect(),
        ),
        other => cut(other, max_string, max_items),
    }
}

/// As [`cut_listing`], for what a listing holds.
fn cut(value: &Value, max_string: usize, max_items: usize) -> Value {
    let string = |text: &str| truncate_with_marker(text, max_string).unwrap_or_else(|| text.to_owned());
    match value {
        Value::String(text) => Value::String(string(text)),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .take(max_items)
                .map(|item| cut(item, max_string, max_items))
                .collect(),
        ),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .take(max_items)
                .map(|(key, item)| (string(key), cut(item, max_string, max_items)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_small_listing_is_published_whole() {
        let listing = json!({"approval": "a1", "preview": ["docker restart crm-api"], "alert": {"labels": {"alertname": "X"}}});
        assert_eq!(fit(listing.clone()), listing);
    }

    #[test]
    fn a_huge_listing_is_cut_to_the_bound_and_says_so() {
        let labels: Map<String, Value> = (0..64)
            .map(|i| (format!("{i}{}", "k".repeat(4000)), json!("v".repeat(4096))))
            .collect();
        let calls: Vec<Value> = (0..1000)
            .map(|i| json!({"name": "exec", "args": [i, "x".repeat(5000)]}))
            .collect();
        let listing = json!({
            "approval": "a1",
            "alertname": "A".repeat(4096),
            "plugin": "crm",
            "expires_at": 1.5,
            "alert": {"labels": labels.clone(), "annotations": labels},
            "calls": calls,
            "preview": vec!["p".repeat(100_000); 100],
        });
        assert!(size(&listing) > 1 << 20);
        let published = fit(listing);
        assert!(
            size(&published) <= MAX_PUBLISHED_APPROVAL_BYTES,
            "{}",
            size(&published)
        );
        assert_eq!(published["truncated"], true);
        assert_eq!(published["approval"], "a1");
        assert_eq!(published["plugin"], "crm");
        assert_eq!(published["expires_at"], 1.5);
        assert!(published["alertname"].as_str().unwrap().starts_with("AAAA"));
    }

    #[test]
    fn the_summary_fits_whatever_its_fields_hold() {
        let mut listing = Map::new();
        for field in SUMMARY_FIELDS {
            listing.insert(field.to_owned(), json!(vec!["y".repeat(10_000); 100]));
        }
        let published = fit(Value::Object(listing));
        assert!(
            size(&published) <= MAX_PUBLISHED_APPROVAL_BYTES,
            "{}",
            size(&published)
        );
    }
}
