//! Action records: for an action key, the digests of its outputs and the key's preimage.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Digest, Store};
use crate::Result;

const FORMAT_VERSION: u32 = 1;

/// One output of an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputEntry {
    /// Content digest (names the CAS object).
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
}

/// What the cache remembers about one executed action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Record format version.
    pub version: u32,
    /// The action key (blake3 of `preimage`).
    pub key: Digest,
    /// Action kind.
    pub kind: String,
    /// The canonical key preimage: kind, implementation version, params, input digests.
    pub preimage: serde_json::Value,
    /// Outputs by name.
    pub outputs: BTreeMap<String, OutputEntry>,
}

impl ActionRecord {
    /// A record for `key` with the given preimage and outputs.
    pub fn new(
        key: Digest,
        kind: &str,
        preimage: serde_json::Value,
        outputs: BTreeMap<String, OutputEntry>,
    ) -> Self {
        ActionRecord {
            version: FORMAT_VERSION,
            key,
            kind: kind.to_string(),
            preimage,
            outputs,
        }
    }
}

/// Reads the record of `key`; a missing or unreadable record is a miss.
pub(super) fn read(store: &Store, key: &Digest) -> Option<ActionRecord> {
    let bytes = std::fs::read(store.record_path(key)).ok()?;
    let rec: ActionRecord = serde_json::from_slice(&bytes).ok()?;
    (rec.version == FORMAT_VERSION && rec.key == *key).then_some(rec)
}

/// Writes a record atomically.
pub(super) fn write(store: &Store, rec: &ActionRecord) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(rec)
        .map_err(|e| crate::Error::Build(format!("serializing action record: {e}")))?;
    // Staged in tmp/: a killed writer's temp file is then found by the next build's cleanup
    // instead of staying among the records until a gc.
    crate::fsutil::write_atomic_via(&store.record_path(&rec.key), &bytes, &store.tmp_dir())
}

/// Deletes a record (its outputs were found missing or corrupt).
pub(super) fn remove(store: &Store, key: &Digest) {
    let _ = std::fs::remove_file(store.record_path(key));
}
