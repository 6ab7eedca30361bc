//! The JSON that etcd's gRPC gateway speaks (`/v3/...`): the protobuf
//! messages of etcd's v3 API in proto3's JSON mapping, as etcd 3.4 writes
//! them. Three rules of that mapping shape every type here:
//!
//! - `bytes` (keys, values) are standard base64 strings;
//! - `int64` (revisions, leases, counts) are decimal strings, since a JSON
//!   number cannot hold every int64 (numbers are read too);
//! - a field at its default (`false`, `0`, empty) is left out of an answer:
//!   a transaction whose comparison failed has no `succeeded` at all.
//!
//! Field names are the proto's own (`mod_revision`, `TTL`), as the gateway
//! is configured to write them.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `mvccpb.KeyValue`: a key as stored.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct KeyValue {
    /// The key.
    #[serde(with = "base64_bytes")]
    pub key: Vec<u8>,
    /// Its value.
    #[serde(default, with = "base64_bytes")]
    pub value: Vec<u8>,
    /// The revision that created it (0: it does not exist).
    #[serde(default, deserialize_with = "int64::deserialize")]
    pub create_revision: i64,
    /// The revision that last changed it.
    #[serde(default, deserialize_with = "int64::deserialize")]
    pub mod_revision: i64,
    /// The lease it is bound to (0: none).
    #[serde(default, deserialize_with = "int64::deserialize")]
    pub lease: i64,
}

/// `RangeRequest`: the keys from `key` up to `range_end` (one key without it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeRequest {
    /// The first key.
    #[serde(with = "base64_bytes")]
    pub key: Vec<u8>,
    /// The end of the range, excluded; empty: `key` alone.
    #[serde(with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    pub range_end: Vec<u8>,
    /// At most this many keys; 0: all.
    #[serde(serialize_with = "int64::serialize", skip_serializing_if = "is_zero")]
    pub limit: i64,
}

impl RangeRequest {
    /// The one key `key`.
    pub fn key(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            range_end: Vec::new(),
            limit: 0,
        }
    }

    /// Every key that starts with `prefix`, the first `limit` (0: all).
    pub fn prefix(prefix: impl Into<Vec<u8>>, limit: i64) -> Self {
        let key = prefix.into();
        Self {
            range_end: prefix_end(&key),
            key,
            limit,
        }
    }
}

/// The end of the range of keys that start with `prefix`: the prefix with
/// its last byte below 0xff incremented (and what follows it dropped); the
/// whole key space (`\0`) when every byte is 0xff, as etcd reads it.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|b| *b < 0xff) {
        Some(last) => {
            let mut end = prefix[..=last].to_vec();
            end[last] += 1;
            end
        }
        None => vec![0],
    }
}

/// `RangeResponse`: the keys found.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct RangeResponse {
    /// The keys, in key order.
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
    /// How many keys the range holds (more than `kvs` under a limit).
    #[serde(default, deserialize_with = "int64::deserialize")]
    pub count: i64,
}

/// `PutRequest`: sets a key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PutRequest {
    /// The key.
    #[serde(with = "base64_bytes")]
    pub key: Vec<u8>,
    /// Its new value.
    #[serde(with = "base64_bytes")]
    pub value: Vec<u8>,
    /// The lease the key lives on; 0: none (it stays until deleted).
    #[serde(serialize_with = "int64::serialize", skip_serializing_if = "is_zero")]
    pub lease: i64,
}

/// `DeleteRangeRequest`: deletes one key, or the keys up to `range_end`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeleteRequest {
    /// The key.
    #[serde(with = "base64_bytes")]
    pub key: Vec<u8>,
    /// Past the last key deleted (empty: `key` alone).
    #[serde(with = "base64_bytes", skip_serializing_if = "Vec::is_empty")]
    pub range_end: Vec<u8>,
}

/// `RequestOp`: one step of a transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TxnOp {
    /// Reads a key.
    #[serde(rename = "request_range")]
    Get(RangeRequest),
    /// Sets a key.
    #[serde(rename = "request_put")]
    Put(PutRequest),
    /// Deletes a key.
    #[serde(rename = "request_delete_range")]
    Delete(DeleteRequest),
}

impl TxnOp {
    /// Reads `key`.
    pub fn get(key: impl Into<Vec<u8>>) -> Self {
        Self::Get(RangeRequest::key(key))
    }

    /// Sets `key` to `value`, on `lease` when there is one.
    pub fn put(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>, lease: Option<i64>) -> Self {
        Self::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            lease: lease.unwrap_or(0),
        })
    }

    /// Deletes `key`.
    pub fn delete(key: impl Into<Vec<u8>>) -> Self {
        Self::Delete(DeleteRequest {
            key: key.into(),
            range_end: Vec::new(),
        })
    }

    /// Deletes every key that starts with `prefix`.
    pub fn delete_prefix(prefix: impl Into<Vec<u8>>) -> Self {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        Self::Delete(DeleteRequest { key, range_end })
    }
}

/// `Compare.CompareResult`: how the key's field must relate to the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompareOp {
    /// `==`.
    Equal,
    /// `>`.
    Greater,
    /// `<`.
    Less,
    /// `!=`.
    NotEqual,
}

/// `Compare.CompareTarget`: which field of the key is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum CompareTarget {
    Create,
    Mod,
}

/// `Compare`: a condition on one key's revisions. A key that does not exist
/// has revisions 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compare {
    result: CompareOp,
    target: CompareTarget,
    #[serde(with = "base64_bytes")]
    key: Vec<u8>,
    // The proto's `target_union` oneof: the field named after `target`, set
    // even at 0 (left out, etcd would compare against nothing).
    #[serde(
        serialize_with = "int64::serialize_some",
        skip_serializing_if = "Option::is_none"
    )]
    create_revision: Option<i64>,
    #[serde(
        serialize_with = "int64::serialize_some",
        skip_serializing_if = "Option::is_none"
    )]
    mod_revision: Option<i64>,
}

impl Compare {
    /// The revision that created `key` (0: absent) compared with `revision`.
    pub fn create_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: i64) -> Self {
        Self {
            result: op,
            target: CompareTarget::Create,
            key: key.into(),
            create_revision: Some(revision),
            mod_revision: None,
        }
    }

    /// The revision that last changed `key` compared with `revision`.
    pub fn mod_revision(key: impl Into<Vec<u8>>, op: CompareOp, revision: i64) -> Self {
        Self {
            result: op,
            target: CompareTarget::Mod,
            key: key.into(),
            create_revision: None,
            mod_revision: Some(revision),
        }
    }
}

/// `TxnRequest`: `success` if every comparison holds, else `failure`, atomically.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Txn {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    compare: Vec<Compare>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    success: Vec<TxnOp>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    failure: Vec<TxnOp>,
}

impl Txn {
    /// A transaction that does nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The conditions (all must hold).
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compare.extend(compares);
        self
    }

    /// What runs when they hold (always, without conditions).
    pub fn and_then(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.success.extend(ops);
        self
    }

    /// What runs when one does not.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = TxnOp>) -> Self {
        self.failure.extend(ops);
        self
    }
}

/// `ResponseOp`: the answer to one step, in the order of the steps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum TxnOpResponse {
    /// A read's keys.
    #[serde(rename = "response_range")]
    Get(RangeResponse),
    /// A put's (nothing autoheal reads).
    #[serde(rename = "response_put")]
    Put(Empty),
    /// A delete's (nothing autoheal reads).
    #[serde(rename = "response_delete_range")]
    Delete(Empty),
}

/// An answer whose fields autoheal does not read (the gateway's header).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct Empty {}

/// `TxnResponse`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct TxnResponse {
    /// Whether the comparisons held (`success` ran).
    #[serde(default)]
    pub succeeded: bool,
    /// One answer per step that ran.
    #[serde(default)]
    pub responses: Vec<TxnOpResponse>,
}

impl TxnResponse {
    /// The answers of the reads among the steps, in order.
    pub fn gets(&self) -> impl Iterator<Item = &RangeResponse> {
        self.responses.iter().filter_map(|op| match op {
            TxnOpResponse::Get(range) => Some(range),
            _ => None,
        })
    }
}

/// `LeaseGrantRequest`: a lease of `TTL` seconds, its id chosen by etcd.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseGrantRequest {
    /// Seconds.
    #[serde(rename = "TTL", serialize_with = "int64::serialize")]
    pub ttl: i64,
}

/// `LeaseGrantResponse`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LeaseGrantResponse {
    /// The lease's id.
    #[serde(rename = "ID", deserialize_with = "int64::deserialize")]
    pub id: i64,
    /// The seconds granted.
    #[serde(rename = "TTL", default, deserialize_with = "int64::deserialize")]
    pub ttl: i64,
}

/// `LeaseRevokeRequest`: ends a lease and deletes the keys on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaseRevokeRequest {
    /// The lease's id.
    #[serde(rename = "ID", serialize_with = "int64::serialize")]
    pub id: i64,
}

/// `AuthenticateRequest`: a user's name and password, for a token.
#[derive(Clone, PartialEq, Serialize)]
pub struct AuthenticateRequest {
    /// The user.
    pub name: String,
    /// Its password.
    pub password: String,
}

/// `AuthenticateResponse`.
#[derive(Clone, PartialEq, Deserialize)]
pub struct AuthenticateResponse {
    /// Sent back in `Authorization` with each request.
    pub token: String,
}

/// What the gateway answers instead when the call failed: the gRPC status.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorAnswer {
    /// The gRPC status code (14: unavailable).
    pub code: i32,
    /// etcd's message, e.g. `etcdserver: no leader`.
    #[serde(default)]
    pub message: String,
}

fn is_zero(value: &i64) -> bool {
    *value == 0
}

/// Bytes as standard base64 strings.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// int64 as decimal strings; read from strings or numbers.
mod int64 {
    use super::*;

    pub fn serialize<S: Serializer>(value: &i64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn serialize_some<S: Serializer>(value: &Option<i64>, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(&value.unwrap_or(0), serializer)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        Number(i64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
        match Written::deserialize(deserializer)? {
            Written::Number(value) => Ok(value),
            Written::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_claim_transaction_is_written_as_the_gateway_reads_it() {
        let txn = Txn::new()
            .when([Compare::create_revision("/a/k", CompareOp::Equal, 0)])
            .and_then([TxnOp::put("/a/k", "v", Some(7)), TxnOp::get("/a/s")])
            .or_else([TxnOp::delete("/a/k")]);
        assert_eq!(
            serde_json::to_value(&txn).unwrap(),
            json!({
                "compare": [{"result": "EQUAL", "target": "CREATE", "key": "L2Evaw==", "create_revision": "0"}],
                "success": [
                    {"request_put": {"key": "L2Evaw==", "value": "dg==", "lease": "7"}},
                    {"request_range": {"key": "L2Evcw=="}},
                ],
                "failure": [{"request_delete_range": {"key": "L2Evaw=="}}],
            })
        );
        let compare = Compare::mod_revision("k", CompareOp::NotEqual, 12);
        assert_eq!(
            serde_json::to_value(&compare).unwrap(),
            json!({"result": "NOT_EQUAL", "target": "MOD", "key": "aw==", "mod_revision": "12"})
        );
        // No lease, no conditions: the fields are left out, as proto3 does.
        let put = Txn::new().and_then([TxnOp::put("k", "", None)]);
        assert_eq!(
            serde_json::to_value(&put).unwrap(),
            json!({"success": [{"request_put": {"key": "aw==", "value": ""}}]})
        );
    }

    #[test]
    fn a_prefix_ends_past_its_last_byte() {
        let range = RangeRequest::prefix("/a/", 256);
        assert_eq!(range.range_end, b"/a0");
        assert_eq!(
            serde_json::to_value(&range).unwrap(),
            json!({"key": "L2Ev", "range_end": "L2Ew", "limit": "256"})
        );
        assert_eq!(prefix_end(&[b'a', 0xff, 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff]), [0]);
        assert_eq!(
            serde_json::to_value(RangeRequest::key("k")).unwrap(),
            json!({"key": "aw=="})
        );
    }

    /// Answers as etcd 3.4.23's gateway wrote them.
    #[test]
    fn answers_are_read_with_their_defaults_left_out() {
        let held: TxnResponse = serde_json::from_value(json!({
            "header": {"cluster_id": "324952591200643719", "revision": "2", "raft_term": "2"},
            "responses": [
                {"response_range": {"header": {"revision": "2"}, "kvs": [{"key": "L2Evaw==",
                    "create_revision": "2", "mod_revision": "3", "version": "1", "value": "aGVsbG8=",
                    "lease": "2324035865432206085"}], "count": "1"}},
                {"response_range": {"header": {"revision": "2"}}},
                {"response_delete_range": {"header": {"revision": "2"}}},
            ]
        }))
        .unwrap();
        assert!(!held.succeeded, "left out when false");
        let gets: Vec<&RangeResponse> = held.gets().collect();
        assert_eq!(gets.len(), 2);
        assert_eq!(
            gets[0].kvs,
            [KeyValue {
                key: b"/a/k".to_vec(),
                value: b"hello".to_vec(),
                create_revision: 2,
                mod_revision: 3,
                lease: 2324035865432206085,
            }]
        );
        assert_eq!(gets[0].count, 1);
        assert!(gets[1].kvs.is_empty() && gets[1].count == 0);

        let won: TxnResponse = serde_json::from_value(json!({"header": {}, "succeeded": true,
            "responses": [{"response_put": {"header": {}}}]}))
        .unwrap();
        assert!(won.succeeded && won.gets().next().is_none());

        // A key whose value is empty has no `value`.
        let empty: KeyValue =
            serde_json::from_value(json!({"key": "aw==", "create_revision": 5, "mod_revision": "5"}))
                .unwrap();
        assert_eq!((empty.value.len(), empty.create_revision), (0, 5));
    }

    #[test]
    fn leases_and_errors_are_read() {
        let grant: LeaseGrantResponse =
            serde_json::from_value(json!({"header": {}, "ID": "2324035865432206085", "TTL": "10"})).unwrap();
        assert_eq!((grant.id, grant.ttl), (2324035865432206085, 10));
        assert_eq!(
            serde_json::to_value(LeaseGrantRequest { ttl: 10 }).unwrap(),
            json!({"TTL": "10"})
        );
        assert_eq!(
            serde_json::to_value(LeaseRevokeRequest { id: -3 }).unwrap(),
            json!({"ID": "-3"})
        );
        let error: ErrorAnswer = serde_json::from_value(json!({"error": "etcdserver: no leader",
            "message": "etcdserver: no leader", "code": 14}))
        .unwrap();
        assert_eq!(
            (error.code, error.message.as_str()),
            (14, "etcdserver: no leader")
        );
    }

    #[test]
    fn what_is_not_etcds_json_is_refused() {
        assert!(serde_json::from_value::<KeyValue>(json!({"key": "not base64!"})).is_err());
        assert!(serde_json::from_value::<LeaseGrantResponse>(json!({"ID": "ten"})).is_err());
        assert!(serde_json::from_value::<TxnResponse>(json!({"responses": [{"response_txn": {}}]})).is_err());
    }
}
