//! What etcd cannot forge: HMAC-SHA256 under the cluster secret
//! (`[cluster] secret_file`), which every replica holds and etcd never sees.
//!
//! Anyone who can write to etcd can register a replica URL or write an
//! answer, so neither is believed for what it says: a replica asking a peer
//! for its trail signs the request (method, path and query, time) instead
//! of forwarding the operator's token, and an answer to an approval carries
//! a MAC over everything the owner applies. The two uses sign different
//! labels, so one can never stand for the other.
//!
//! Pure (no etcd, no HTTP), so it lives here where the fuzz targets reach
//! it; the host re-exports it as `cluster::proof`.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The header a replica's signed request to a peer carries:
/// `v1 <unix seconds> <hex mac>`.
pub const PEER_HEADER: &str = "x-autoheal-peer";

/// How far a signed request's time may be from the receiver's clock (either
/// way): the window in which a captured request could be sent again.
pub const PEER_WINDOW_SEC: i64 = 30;

/// The cluster secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Vec<u8>);

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// Shortest secret accepted, in bytes.
    pub const MIN_LEN: usize = 32;

    /// `bytes` as the secret.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The MAC of `fields` under `label`, each field length-prefixed so that
    /// no two lists of fields sign the same bytes.
    fn mac<F: AsRef<[u8]>>(&self, label: &str, fields: &[F]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        for field in std::iter::once(label.as_bytes()).chain(fields.iter().map(AsRef::as_ref)) {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field);
        }
        mac
    }

    fn sign<F: AsRef<[u8]>>(&self, label: &str, fields: &[F]) -> String {
        hex::encode(self.mac(label, fields).finalize().into_bytes())
    }

    /// Compares in constant time.
    fn verify<F: AsRef<[u8]>>(&self, label: &str, fields: &[F], signature: &str) -> bool {
        let Ok(bytes) = hex::decode(signature.trim()) else {
            return false;
        };
        self.mac(label, fields).verify_slice(&bytes).is_ok()
    }

    /// A key for another use, derived under `label` (e.g. the console's
    /// session key): every replica derives the same one, and it says
    /// nothing of the secret or of the keys other labels give.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        self.mac("derived-key", &[label.as_bytes()])
            .finalize()
            .into_bytes()
            .into()
    }

    /// The [`PEER_HEADER`] value for `method path_and_query` at `now`.
    pub fn sign_request(&self, method: &str, path_and_query: &str, now: i64) -> String {
        let ts = now.to_string();
        let mac = self.sign(
            "peer-request",
            &[method.as_bytes(), path_and_query.as_bytes(), ts.as_bytes()],
        );
        format!("v1 {ts} {mac}")
    }

    /// Whether `header` signs `method path_and_query` within
    /// [`PEER_WINDOW_SEC`] of `now`.
    pub fn verify_request(&self, header: &str, method: &str, path_and_query: &str, now: i64) -> bool {
        let mut parts = header.split_whitespace();
        let (Some("v1"), Some(ts), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(at) = ts.parse::<i64>() else { return false };
        if now.abs_diff(at) > PEER_WINDOW_SEC.unsigned_abs() {
            return false;
        }
        self.verify(
            "peer-request",
            &[method.as_bytes(), path_and_query.as_bytes(), ts.as_bytes()],
            mac,
        )
    }

    /// The proof of an answer to approval `id` (see `RemoteAnswer`).
    pub fn sign_answer(&self, id: &str, answer: &AnswerFields<'_>) -> String {
        self.sign("approval-answer", &answer.fields(id))
    }

    /// Whether `proof` is [`ClusterSecret::sign_answer`]'s for these fields.
    pub fn verify_answer(&self, id: &str, answer: &AnswerFields<'_>, proof: &str) -> bool {
        self.verify("approval-answer", &answer.fields(id), proof)
    }
}

/// Everything of an answer the owner applies, as signed.
#[derive(Clone, Copy)]
pub struct AnswerFields<'a> {
    /// Approve or deny.
    pub grant: bool,
    /// Who answered.
    pub by: Option<&'a str>,
    /// Why.
    pub comment: Option<&'a str>,
    /// The replica it was given to.
    pub via: &'a str,
    /// When (unix seconds, as written).
    pub at: f64,
    /// Who answered, as the replica it was given to verified them.
    pub principal: Option<&'a AnswerPrincipal>,
}

impl AnswerFields<'_> {
    fn fields(&self, id: &str) -> Vec<Vec<u8>> {
        // A missing `by` or comment and an empty one sign differently.
        let optional = |value: Option<&str>| match value {
            Some(text) => [b"+".as_slice(), text.as_bytes()].concat(),
            None => b"-".to_vec(),
        };
        let mut fields = vec![
            id.as_bytes().to_vec(),
            if self.grant {
                b"approve".to_vec()
            } else {
                b"deny".to_vec()
            },
            optional(self.by),
            optional(self.comment),
            self.via.as_bytes().to_vec(),
            // The float's bits, so the time signed is exactly the one stored.
            self.at.to_bits().to_be_bytes().to_vec(),
        ];
        // An answer without a principal (from a replica older than them)
        // signs as it always did; one with a principal signs each part, so
        // an etcd writer can swap in no other approver.
        if let Some(p) = self.principal {
            fields.push(b"principal".to_vec());
            fields.push(p.kind.as_bytes().to_vec());
            fields.push(p.id.as_bytes().to_vec());
            fields.push(optional(p.name.as_deref()));
            fields.push(p.groups.len().to_be_bytes().to_vec());
            fields.extend(p.groups.iter().map(|g| g.as_bytes().to_vec()));
        }
        fields
    }
}

/// The verified caller who gave an answer, as the owner needs it to apply
/// the approval's policy: kind and id (who), name (for people), groups
/// (for `group:` approvers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerPrincipal {
    /// `person`, `token`, `shared_token`.
    pub kind: String,
    /// A person's subject, a token's name, `operator`.
    pub id: String,
    /// A person's display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A person's groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

/// An operator's answer given on one replica, for the owner to apply:
/// the value of `answers/ID` in etcd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteAnswer {
    /// Approve (`true`) or deny.
    pub grant: bool,
    /// Who answered.
    pub by: Option<String>,
    /// Why.
    pub comment: Option<String>,
    /// The replica the answer was given to.
    pub via: String,
    /// When it was given (unix seconds).
    #[serde(default)]
    pub at: f64,
    /// Who gave it, as verified where it was given (absent from replicas
    /// older than principals: the shared operator token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<AnswerPrincipal>,
    /// The MAC of all the above and the approval's id under the cluster
    /// secret: a replica wrote it, not merely someone who can write to etcd.
    #[serde(default)]
    pub proof: String,
}

impl RemoteAnswer {
    /// What of it is signed: everything the owner applies.
    pub fn fields(&self) -> AnswerFields<'_> {
        AnswerFields {
            grant: self.grant,
            by: self.by.as_deref(),
            comment: self.comment.as_deref(),
            via: &self.via,
            at: self.at,
            principal: self.principal.as_ref(),
        }
    }

    /// The answer to approval `id` in `value` (as read from etcd), if a
    /// replica holding `secret` wrote it; else why not, in words that never
    /// quote the value.
    pub fn read(secret: &ClusterSecret, id: &str, value: &[u8]) -> Result<Self, &'static str> {
        let Ok(answer) = serde_json::from_slice::<RemoteAnswer>(value) else {
            return Err("not an answer");
        };
        if answer.proof.is_empty() {
            return Err("no proof");
        }
        if !secret.verify_answer(id, &answer.fields(), &answer.proof) {
            return Err("a proof not made with the cluster secret");
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(byte: u8) -> ClusterSecret {
        ClusterSecret::new(vec![byte; 32])
    }

    #[test]
    fn a_request_is_signed_for_its_method_path_and_time() {
        let header = secret(1).sign_request("GET", "/audit?n=5", 1000);
        assert!(secret(1).verify_request(&header, "GET", "/audit?n=5", 1010));
        assert!(!secret(2).verify_request(&header, "GET", "/audit?n=5", 1010));
        assert!(!secret(1).verify_request(&header, "GET", "/audit?n=6", 1010));
        assert!(!secret(1).verify_request(&header, "POST", "/audit?n=5", 1010));
        assert!(!secret(1).verify_request(&header, "GET", "/audit?n=5", 1000 + PEER_WINDOW_SEC + 1));
        assert!(!secret(1).verify_request("v1 1000 00", "GET", "/audit?n=5", 1000));
        // Any time at all is only compared, never overflows.
        let far = format!("v1 {} 00", i64::MIN);
        assert!(!secret(1).verify_request(&far, "GET", "/audit?n=5", i64::MAX));
    }

    #[test]
    fn an_answer_is_signed_for_everything_applied() {
        let answer = AnswerFields {
            grant: true,
            by: Some("alice"),
            comment: None,
            via: "r1",
            at: 1.5,
            principal: None,
        };
        let proof = secret(1).sign_answer("a1", &answer);
        assert!(secret(1).verify_answer("a1", &answer, &proof));
        assert!(!secret(2).verify_answer("a1", &answer, &proof));
        assert!(!secret(1).verify_answer("a2", &answer, &proof));
        let changed = [
            AnswerFields {
                grant: false,
                ..answer
            },
            AnswerFields {
                by: Some("mallory"),
                ..answer
            },
            AnswerFields {
                comment: Some(""),
                ..answer
            },
            AnswerFields { via: "r2", ..answer },
            AnswerFields { at: 2.5, ..answer },
        ];
        for other in &changed {
            assert!(!secret(1).verify_answer("a1", other, &proof));
        }
        // Not a request's signature either.
        assert!(!secret(1).verify_request(&format!("v1 0 {proof}"), "GET", "/", 0));
    }

    #[test]
    fn an_answer_read_from_etcd_is_believed_only_with_its_proof() {
        let mut answer = RemoteAnswer {
            grant: true,
            by: Some("alice".into()),
            comment: None,
            via: "r1".into(),
            at: 1.5,
            principal: None,
            proof: String::new(),
        };
        let unsigned = serde_json::to_vec(&answer).unwrap();
        assert_eq!(RemoteAnswer::read(&secret(1), "a1", &unsigned), Err("no proof"));
        answer.proof = secret(1).sign_answer("a1", &answer.fields());
        let written = serde_json::to_vec(&answer).unwrap();
        assert_eq!(RemoteAnswer::read(&secret(1), "a1", &written), Ok(answer));
        let refused = Err("a proof not made with the cluster secret");
        assert_eq!(RemoteAnswer::read(&secret(2), "a1", &written), refused);
        assert_eq!(RemoteAnswer::read(&secret(1), "a2", &written), refused);
        assert_eq!(
            RemoteAnswer::read(&secret(1), "a1", b"{\"grant\":"),
            Err("not an answer")
        );
    }

    #[test]
    fn the_principal_of_an_answer_is_signed_too() {
        let alice = AnswerPrincipal {
            kind: "person".into(),
            id: "alice".into(),
            name: Some("Alice".into()),
            groups: vec!["sre".into()],
        };
        let mut answer = RemoteAnswer {
            grant: true,
            by: None,
            comment: None,
            via: "r1".into(),
            at: 1.5,
            principal: Some(alice.clone()),
            proof: String::new(),
        };
        answer.proof = secret(1).sign_answer("a1", &answer.fields());
        let read = |a: &RemoteAnswer| RemoteAnswer::read(&secret(1), "a1", &serde_json::to_vec(a).unwrap());
        assert_eq!(read(&answer), Ok(answer.clone()));
        let refused = Err("a proof not made with the cluster secret");
        let forged = [
            AnswerPrincipal {
                id: "mallory".into(),
                ..alice.clone()
            },
            AnswerPrincipal {
                kind: "token".into(),
                ..alice.clone()
            },
            AnswerPrincipal {
                groups: vec!["sre".into(), "admins".into()],
                ..alice.clone()
            },
            AnswerPrincipal {
                name: None,
                ..alice.clone()
            },
        ];
        for principal in forged {
            let changed = RemoteAnswer {
                principal: Some(principal),
                ..answer.clone()
            };
            assert_eq!(read(&changed), refused);
        }
        assert_eq!(
            read(&RemoteAnswer {
                principal: None,
                ..answer.clone()
            }),
            refused
        );
    }
}
