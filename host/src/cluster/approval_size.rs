//! What one published approval may weigh. A listing holds the alert (its
//! labels and annotations, each up to `max_label_bytes`), the preview and the
//! capability calls, so it can run to hundreds of KiB; published as is, a
//! few of them pass etcd's request limit (1.5 MiB by default) or the 4 MiB
//! a client takes in one response, and every publish or list fails. A
//! listing past [`MAX_PUBLISHED_APPROVAL_BYTES`] is cut: long strings and
//! long lists first, then down to its identifying fields, and says so with
//! `truncated: true`. The owner's own `GET /approvals` lists it whole.

use std::collections::BTreeMap;

use autoheal_api::approvals::ApprovalListing;
use autoheal_core::util::truncate_with_marker;

/// Largest approval published to etcd, as JSON.
pub const MAX_PUBLISHED_APPROVAL_BYTES: usize = 8 * 1024;

/// Ever shorter strings and lists, tried in turn; the last, with no list
/// entries at all, leaves the identifying fields of at most 64 bytes each,
/// which always fit.
const CUTS: [(usize, usize); 4] = [(1024, 32), (256, 8), (64, 2), (64, 0)];

/// `listing`, cut until its JSON is at most [`MAX_PUBLISHED_APPROVAL_BYTES`].
pub fn fit(listing: ApprovalListing) -> ApprovalListing {
    if size(&listing) <= MAX_PUBLISHED_APPROVAL_BYTES {
        return listing;
    }
    let mut smallest = listing.clone();
    for (max_string, max_items) in CUTS {
        smallest = cut(&listing, max_string, max_items);
        if size(&smallest) <= MAX_PUBLISHED_APPROVAL_BYTES {
            break;
        }
    }
    smallest
}

fn size(listing: &ApprovalListing) -> usize {
    serde_json::to_vec(listing).map_or(usize::MAX, |json| json.len())
}

/// `listing` with strings of at most `max_string` bytes and lists and maps
/// of at most `max_items` entries (the first ones). The approval's id is
/// never cut: it is how any replica answers it.
fn cut(listing: &ApprovalListing, max_string: usize, max_items: usize) -> ApprovalListing {
    let text = |t: &mut String| {
        if let Some(cut) = truncate_with_marker(t, max_string) {
            *t = cut;
        }
    };
    let map = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .take(max_items)
            .map(|(k, v)| {
                let (mut k, mut v) = (k.clone(), v.clone());
                text(&mut k);
                text(&mut v);
                (k, v)
            })
            .collect()
    };
    let mut listing = listing.clone();
    listing.truncated = true;
    listing.replica.iter_mut().for_each(text);
    let request = &mut listing.request;
    let alert = &mut request.alert;
    alert.labels = map(&alert.labels);
    alert.annotations = map(&alert.annotations);
    for field in [
        &mut alert.starts_at,
        &mut alert.generator_url,
        &mut alert.fingerprint,
    ] {
        text(field);
    }
    alert.ends_at.iter_mut().for_each(text);
    request.calls.truncate(max_items);
    for call in &mut request.calls {
        text(&mut call.target);
        call.detail.iter_mut().for_each(text);
    }
    // Who may answer and who has: cut like the rest (a replica forwarding
    // an answer to a truncated listing leaves the policy to the owner).
    request.approvers.truncate(max_items);
    request.approvers.iter_mut().for_each(text);
    listing.approved_by.truncate(max_items);
    for by in &mut listing.approved_by {
        text(&mut by.id);
        text(&mut by.kind);
        by.name.iter_mut().for_each(text);
    }
    let request = &mut listing.request;
    if let Some(by) = &mut request.requested_by {
        text(&mut by.id);
        text(&mut by.kind);
        by.name.iter_mut().for_each(text);
    }
    request.preview.truncate(max_items);
    request.preview.iter_mut().for_each(text);
    if let Some(chain) = &mut request.chain {
        chain.chain.truncate(max_items);
        chain.chain.iter_mut().for_each(text);
    }
    for field in [
        &mut request.alertname,
        &mut request.cooldown_key,
        &mut request.fingerprint,
        &mut request.plugin,
        &mut request.plugin_version,
    ] {
        text(field);
    }
    for field in [
        &mut request.summary,
        &mut request.component_hash,
        &mut request.manifest_hash,
    ] {
        field.iter_mut().for_each(text);
    }
    listing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listing(
        alertname: &str,
        labels: serde_json::Value,
        preview: Vec<String>,
        calls: serde_json::Value,
    ) -> ApprovalListing {
        serde_json::from_value(json!({
            "requested_at": 1.0,
            "approval": "a1",
            "alertname": alertname,
            "plugin": "crm",
            "plugin_version": "1.0.0",
            "fingerprint": "f",
            "cooldown_key": "k",
            "cause": "manifest",
            "expires_at": 1.5,
            "alert": {"status": "firing", "labels": labels.clone(), "annotations": labels},
            "calls": calls,
            "preview": preview,
        }))
        .unwrap()
    }

    #[test]
    fn a_small_listing_is_published_whole() {
        let small = listing(
            "X",
            json!({"alertname": "X"}),
            vec!["docker restart crm-api".into()],
            json!([]),
        );
        assert_eq!(fit(small.clone()), small);
    }

    #[test]
    fn a_huge_listing_is_cut_to_the_bound_and_says_so() {
        let labels: serde_json::Map<String, serde_json::Value> = (0..64)
            .map(|i| (format!("{i}{}", "k".repeat(4000)), json!("v".repeat(4096))))
            .collect();
        let calls: Vec<serde_json::Value> = (0..1000)
            .map(|i| json!({"capability": "containers.inspect", "outcome": "ok", "target": format!("{i}{}", "x".repeat(5000))}))
            .collect();
        let huge = listing(
            &"A".repeat(4096),
            json!(labels),
            vec!["p".repeat(100_000); 100],
            json!(calls),
        );
        assert!(size(&huge) > 1 << 20);
        let published = fit(huge);
        assert!(
            size(&published) <= MAX_PUBLISHED_APPROVAL_BYTES,
            "{}",
            size(&published)
        );
        assert!(published.truncated);
        assert_eq!(published.request.approval, "a1");
        assert_eq!(published.request.plugin, "crm");
        assert_eq!(published.request.expires_at, 1.5);
        assert!(published.request.alertname.starts_with("AAAA"));
        // Still a listing to every replica that reads it back.
        let back: ApprovalListing = serde_json::from_slice(&serde_json::to_vec(&published).unwrap()).unwrap();
        assert_eq!(back, published);
    }

    #[test]
    fn the_last_cut_fits_whatever_the_fields_hold() {
        let long = "y".repeat(1_000_000);
        let mut huge = listing(&long, json!({}), vec![long.clone(); 3], json!([]));
        huge.request.plugin = long.clone();
        huge.request.cooldown_key = long.clone();
        huge.request.summary = Some(long.clone());
        huge.request.approvers = vec![format!("group:{long}"); 64];
        let who = autoheal_core::event::Actor {
            id: long.clone(),
            kind: "person".into(),
            name: Some(long.clone()),
        };
        huge.approved_by = vec![(&who).into(); 5];
        huge.request.requested_by = Some(who);
        huge.replica = Some(long);
        let published = fit(huge);
        assert!(
            size(&published) <= MAX_PUBLISHED_APPROVAL_BYTES,
            "{}",
            size(&published)
        );
    }
}
