//! What etcd cannot forge: HMAC-SHA256 under the cluster secret. The code
//! is in `autoheal_core::proof` (pure, so the fuzz targets reach it without
//! the host); re-exported here, where the cluster uses it.

pub use autoheal_core::proof::*;
