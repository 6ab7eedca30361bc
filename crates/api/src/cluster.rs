//! The records replicas share through etcd (besides the claims and
//! switches, which are the host's own): who is up, and the approvals each
//! publishes. Answers forwarded between replicas are
//! `autoheal_core::proof::RemoteAnswer`, signed under the cluster secret.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::approvals::ApprovalListing;

/// A replica as the others see it (`replicas/NAME`, leased).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// Its name.
    pub replica: String,
    /// Where its HTTP API is (its `public_url`).
    pub url: String,
    /// When it last renewed (unix seconds).
    pub seen: f64,
}

/// An approval a replica published (`approvals/ID`, leased until it expires).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedApproval {
    /// The replica it waits on.
    pub replica: String,
    /// Its `GET /approvals` entry there, cut to fit (`truncated`).
    pub listing: ApprovalListing,
}
