//! Downloads (read-through, `cache pull`) and uploads (write-back, `cache push`).

use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::Serialize;
use sha2::Digest as _;

use super::reapi::{self, ActionResult, OutputFile};
use super::{
    ATTEMPTS, Area, BACKOFF, Conn, MAX_AC, MAX_RECORD, RECORD_PATH, RemoteError, RemoteOutput,
    RemoteRecord, ac_key, hex, known_sha256, remember_sha256, retry, sha256_hex,
};
use crate::cache::{ActionRecord, Digest, OutputEntry, StatCache, Store};

/// Bytes written and hashed at a time while downloading.
const BATCH: usize = 1 << 20;

/// Fetches the result of action `key`: `Ok(None)` on a miss.
pub(super) async fn fetch_action(
    conn: &Conn,
    store: &Store,
    stat: &StatCache,
    key: &Digest,
    expected: &[String],
    cancel: &AtomicBool,
) -> Result<Option<(BTreeMap<String, OutputEntry>, RemoteRecord)>, RemoteError> {
    let ak = ac_key(key);
    let Some(body) = retry(&format!("GET ac/{ak}"), || {
        conn.backend.get_small(Area::Ac, &ak, MAX_AC)
    })
    .await?
    else {
        return Ok(None);
    };
    let result = ActionResult::decode(&body)
        .map_err(|e| RemoteError::Corrupt(format!("ac/{ak} is not a valid ActionResult: {e}")))?;
    let rec_file = result.file(RECORD_PATH).ok_or_else(|| {
        RemoteError::Corrupt(format!(
            "ac/{ak} has no {RECORD_PATH} (not written by tinylm?)"
        ))
    })?;
    let rd = &rec_file.digest;
    let rec_bytes = retry(&format!("GET cas/{}", rd.hash), || {
        conn.backend.get_small(Area::Cas, &rd.hash, MAX_RECORD)
    })
    .await?
    .ok_or_else(|| {
        RemoteError::Corrupt(format!(
            "cas/{} (the record of ac/{ak}) is missing",
            rd.hash
        ))
    })?;
    count_download(conn, rec_bytes.len() as u64);
    if sha256_hex(&rec_bytes) != rd.hash || rec_bytes.len() as u64 != rd.size_bytes {
        conn.state.mark_bad(&rd.hash);
        return Err(RemoteError::Corrupt(format!(
            "cas/{} (the record of ac/{ak}) does not match its sha256",
            rd.hash
        )));
    }
    let rec: RemoteRecord = serde_json::from_slice(&rec_bytes)
        .map_err(|e| RemoteError::Corrupt(format!("cas/{}: bad record: {e}", rd.hash)))?;
    check_record(&rec, &result, key, expected)?;

    let fetches = rec
        .outputs
        .iter()
        .map(|(name, o)| fetch_object(conn, store, stat, name, o, cancel));
    let results: Vec<Result<(), RemoteError>> = futures_util::stream::iter(fetches)
        .buffer_unordered(conn.jobs)
        .collect()
        .await;
    for r in results {
        r?;
    }
    let outputs = rec
        .outputs
        .iter()
        .map(|(name, o)| {
            (
                name.clone(),
                OutputEntry {
                    digest: o.blake3,
                    size: o.size,
                },
            )
        })
        .collect();
    Ok(Some((outputs, rec)))
}

/// The record must be for this key, name exactly the expected outputs, and agree with the
/// `ActionResult` on every digest.
fn check_record(
    rec: &RemoteRecord,
    result: &ActionResult,
    key: &Digest,
    expected: &[String],
) -> Result<(), RemoteError> {
    if rec.key != *key {
        return Err(RemoteError::Corrupt(format!(
            "the record is for action {}, not {key}",
            rec.key
        )));
    }
    let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
    want.sort_unstable();
    let have: Vec<&str> = rec.outputs.keys().map(String::as_str).collect();
    if want != have {
        return Err(RemoteError::Corrupt(format!(
            "the record lists outputs [{}], expected [{}]",
            have.join(", "),
            want.join(", ")
        )));
    }
    for (name, o) in &rec.outputs {
        let ok = result
            .file(name)
            .is_some_and(|f| f.digest.hash == o.sha256 && f.digest.size_bytes == o.size);
        if !ok {
            return Err(RemoteError::Corrupt(format!(
                "the ActionResult and the record disagree about output `{name}`"
            )));
        }
    }
    Ok(())
}

fn count_download(conn: &Conn, bytes: u64) {
    let c = &conn.state.counters;
    c.downloaded_objects.fetch_add(1, Ordering::Relaxed);
    c.downloaded_bytes.fetch_add(bytes, Ordering::Relaxed);
}

/// Makes output `o` present in the local CAS: already there, or downloaded and verified.
async fn fetch_object(
    conn: &Conn,
    store: &Store,
    stat: &StatCache,
    name: &str,
    o: &RemoteOutput,
    cancel: &AtomicBool,
) -> Result<(), RemoteError> {
    let dest = store.object_path(&o.blake3);
    if stat.verify(&dest, &o.blake3, o.size).unwrap_or(false) {
        remember_sha256(store, &o.blake3, &o.sha256);
        return Ok(());
    }
    let _permit = conn
        .permits
        .acquire()
        .await
        .map_err(|_| RemoteError::Cancelled)?;
    let tmp_dir = store.tmp_dir();
    let local = |e: std::io::Error| RemoteError::Local(format!("{}: {e}", tmp_dir.display()));
    // Dropped (deleted) on every early return: a partial download never reaches the CAS.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{}-remote-", std::process::id()))
        .tempfile_in(&tmp_dir)
        .map_err(local)?;
    let (sha, b3) = download(conn, &o.sha256, o.size, tmp.as_file_mut(), cancel).await?;
    if sha != o.sha256 {
        conn.state.mark_bad(&o.sha256);
        return Err(RemoteError::Corrupt(format!(
            "output `{name}`: cas/{} hashes to sha256 {sha} (corrupt on the server); rejected",
            o.sha256
        )));
    }
    if b3 != o.blake3 {
        return Err(RemoteError::Corrupt(format!(
            "output `{name}`: cas/{} hashes to blake3 {b3}, the record says {}; rejected",
            o.sha256, o.blake3
        )));
    }
    tmp.as_file().sync_all().map_err(local)?;
    let path = tmp.into_temp_path();
    store
        .insert_verified_object(stat, &path, o.blake3)
        .map_err(|e| RemoteError::Local(e.to_string()))?;
    // Renamed into the CAS: nothing left for the guard to delete.
    let _ = path.keep();
    remember_sha256(store, &o.blake3, &o.sha256);
    conn.state
        .counters
        .downloaded_objects
        .fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Streams `cas/<sha>` into `file`, hashing as it goes; resumes from the last byte after a
/// broken transfer when the server supports ranges, else starts over. Returns (sha256, blake3).
async fn download(
    conn: &Conn,
    sha: &str,
    size: u64,
    file: &mut std::fs::File,
    cancel: &AtomicBool,
) -> Result<(String, Digest), RemoteError> {
    let local = |e: std::io::Error| RemoteError::Local(format!("writing a download: {e}"));
    let mut sha256 = sha2::Sha256::new();
    let mut blake = blake3::Hasher::new();
    let mut got = 0u64;
    let mut delay = BACKOFF;
    let mut attempt = 1;
    loop {
        let err = match conn.backend.get_stream(Area::Cas, sha, got).await {
            Ok(None) => {
                return Err(RemoteError::Corrupt(format!(
                    "cas/{sha} is missing on the server"
                )));
            }
            Ok(Some((mut stream, resumed))) => {
                if got > 0 && !resumed {
                    file.set_len(0).map_err(local)?;
                    file.rewind().map_err(local)?;
                    sha256 = sha2::Sha256::new();
                    blake = blake3::Hasher::new();
                    got = 0;
                }
                let mut broken = None;
                // Network chunks are small; hashing and writing a MiB at a time lets sha256
                // and blake3 run side by side on two cores.
                let mut batch: Vec<u8> = Vec::with_capacity(BATCH);
                loop {
                    let chunk = stream.next().await;
                    if cancel.load(Ordering::Relaxed) {
                        return Err(RemoteError::Cancelled);
                    }
                    let end = match chunk {
                        Some(Ok(b)) => {
                            if got + (batch.len() + b.len()) as u64 > size {
                                conn.state.mark_bad(sha);
                                return Err(RemoteError::Corrupt(format!(
                                    "cas/{sha} is larger than the recorded {size} bytes"
                                )));
                            }
                            conn.state
                                .counters
                                .downloaded_bytes
                                .fetch_add(b.len() as u64, Ordering::Relaxed);
                            batch.extend_from_slice(&b);
                            false
                        }
                        Some(Err(e)) => {
                            broken = Some(e);
                            true
                        }
                        None => true,
                    };
                    if batch.len() >= BATCH || (end && !batch.is_empty()) {
                        file.write_all(&batch).map_err(local)?;
                        rayon::join(|| sha256.update(&batch), || blake.update(&batch));
                        got += batch.len() as u64;
                        batch.clear();
                    }
                    if end {
                        break;
                    }
                }
                match broken {
                    None if got == size => break,
                    // The server sent a whole, shorter body: its blob is wrong, not the network.
                    None => {
                        conn.state.mark_bad(sha);
                        return Err(RemoteError::Corrupt(format!(
                            "cas/{sha} has {got} bytes, the record says {size}"
                        )));
                    }
                    Some(e) => e,
                }
            }
            Err(e) => e,
        };
        match err {
            RemoteError::Transient(m) if attempt < ATTEMPTS => {
                tracing::debug!("GET cas/{sha}: {m}; retrying from byte {got} in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 3;
                attempt += 1;
            }
            RemoteError::Transient(m) => {
                return Err(RemoteError::Transient(format!(
                    "downloading cas/{sha} broke after {got} of {size} bytes: {m}"
                )));
            }
            e => return Err(e),
        }
    }
    Ok((
        hex(&sha256.finalize()),
        Digest(*blake.finalize().as_bytes()),
    ))
}

/// sha256 of local object `b3`, from the map or by hashing it (off the async threads).
async fn object_sha256(store: &Store, b3: &Digest) -> Result<String, RemoteError> {
    if let Some(s) = known_sha256(store, b3) {
        return Ok(s);
    }
    let path = store.object_path(b3);
    let sha = tokio::task::spawn_blocking(move || sha256_file(&path))
        .await
        .map_err(|e| RemoteError::Local(e.to_string()))?
        .map_err(RemoteError::Local)?;
    remember_sha256(store, b3, &sha);
    Ok(sha)
}

fn sha256_file(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; super::CHUNK * 4];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

enum Blob<'a> {
    File(&'a Path, u64),
    Bytes(Bytes),
}

/// Uploads a blob unless the remote has it (or has it corrupt, which is replaced).
async fn upload_blob(
    conn: &Conn,
    area: Area,
    key: &str,
    blob: Blob<'_>,
) -> Result<(), RemoteError> {
    let forced = area == Area::Cas && conn.state.is_bad(key);
    if !forced
        && retry(&format!("HEAD {}/{key}", area.dir()), || {
            conn.backend.head(area, key)
        })
        .await?
    {
        conn.state
            .counters
            .already_present
            .fetch_add(1, Ordering::Relaxed);
        return Ok(());
    }
    let _permit = conn
        .permits
        .acquire()
        .await
        .map_err(|_| RemoteError::Cancelled)?;
    let what = format!("PUT {}/{key}", area.dir());
    let size = match &blob {
        Blob::File(path, size) => {
            retry(&what, || conn.backend.put_file(area, key, path, *size)).await?;
            *size
        }
        Blob::Bytes(b) => {
            retry(&what, || conn.backend.put_bytes(area, key, b.clone())).await?;
            b.len() as u64
        }
    };
    let c = &conn.state.counters;
    c.uploaded_objects.fetch_add(1, Ordering::Relaxed);
    c.uploaded_bytes.fetch_add(size, Ordering::Relaxed);
    if let Ok(mut bad) = conn.state.bad.lock() {
        bad.remove(key);
    }
    Ok(())
}

/// Uploads one action: its outputs, its record, then the `ActionResult` naming them.
pub(super) async fn upload_action(
    conn: &Conn,
    store: &Store,
    rec: &ActionRecord,
) -> Result<(), RemoteError> {
    let mut files = Vec::new();
    let mut outputs = BTreeMap::new();
    for (name, o) in &rec.outputs {
        let sha = object_sha256(store, &o.digest).await?;
        let path = store.object_path(&o.digest);
        upload_blob(conn, Area::Cas, &sha, Blob::File(&path, o.size)).await?;
        files.push(OutputFile {
            path: name.clone(),
            digest: reapi::Digest {
                hash: sha.clone(),
                size_bytes: o.size,
            },
            is_executable: false,
        });
        outputs.insert(
            name.clone(),
            RemoteOutput {
                blake3: o.digest,
                sha256: sha,
                size: o.size,
            },
        );
    }
    let record = RemoteRecord {
        format: 1,
        key: rec.key,
        kind: rec.kind.clone(),
        outputs,
        preimage: rec.preimage.clone(),
    };
    let bytes = serde_json::to_vec(&record)
        .map_err(|e| RemoteError::Local(format!("serializing a record: {e}")))?;
    let rsha = sha256_hex(&bytes);
    files.push(OutputFile {
        path: super::RECORD_PATH.to_string(),
        digest: reapi::Digest {
            hash: rsha.clone(),
            size_bytes: bytes.len() as u64,
        },
        is_executable: false,
    });
    upload_blob(conn, Area::Cas, &rsha, Blob::Bytes(Bytes::from(bytes))).await?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let result = ActionResult {
        output_files: files,
        exit_code: 0,
    };
    upload_blob(
        conn,
        Area::Ac,
        &ac_key(&rec.key),
        Blob::Bytes(Bytes::from(result.encode())),
    )
    .await
}

/// What `tinylm cache push` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PushReport {
    /// Actions whose results are now on the remote.
    pub pushed: usize,
    /// Actions that failed to upload.
    pub failed: usize,
}

/// Uploads several actions, a bounded number at a time.
pub(super) async fn push(conn: &Conn, store: &Store, records: Vec<ActionRecord>) -> PushReport {
    let uploads = records.iter().map(|rec| async move {
        let r = upload_action(conn, store, rec).await;
        if let Err(e) = &r {
            conn.state.failed(&format!("pushing `{}`", rec.kind), e);
        }
        r.is_ok()
    });
    let done: Vec<bool> = futures_util::stream::iter(uploads)
        .buffer_unordered(conn.jobs)
        .collect()
        .await;
    PushReport {
        pushed: done.iter().filter(|&&ok| ok).count(),
        failed: done.iter().filter(|&&ok| !ok).count(),
    }
}
