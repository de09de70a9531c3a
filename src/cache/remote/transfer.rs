//! Downloads (read-through, `cache pull`) and uploads (write-back, `cache push`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
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

/// Reads the `ActionResult` of action `key` and the record it names, checked against each other
/// and against `expected`: `Ok(None)` on a miss. Downloads no output.
pub(super) async fn read_entry(
    conn: &Conn,
    key: &Digest,
    expected: &[String],
) -> Result<Option<RemoteRecord>, RemoteError> {
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
    Ok(Some(rec))
}

/// The outputs a record names, as the local cache keeps them.
pub(super) fn local_entries(rec: &RemoteRecord) -> BTreeMap<String, OutputEntry> {
    rec.outputs
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
        .collect()
}

/// Fetches the result of action `key`: `Ok(None)` on a miss.
pub(super) async fn fetch_action(
    conn: &Conn,
    store: &Store,
    stat: &StatCache,
    key: &Digest,
    expected: &[String],
    cancel: &AtomicBool,
) -> Result<Option<(BTreeMap<String, OutputEntry>, RemoteRecord)>, RemoteError> {
    let Some(rec) = read_entry(conn, key, expected).await? else {
        return Ok(None);
    };
    fetch_outputs(conn, store, stat, rec, cancel, None)
        .await
        .map(Some)
}

/// Downloads every output `rec` names that the local CAS lacks, largest first (the longest
/// transfer starts first, so it is not the one left running alone at the end).
pub(super) async fn fetch_outputs(
    conn: &Conn,
    store: &Store,
    stat: &StatCache,
    rec: RemoteRecord,
    cancel: &AtomicBool,
    fin: Option<&Finisher>,
) -> Result<(BTreeMap<String, OutputEntry>, RemoteRecord), RemoteError> {
    let mut outputs: Vec<(&String, &RemoteOutput)> = rec.outputs.iter().collect();
    outputs.sort_by_key(|(_, o)| std::cmp::Reverse(o.size));
    let fetches = outputs
        .into_iter()
        .map(|(name, o)| fetch_object(conn, store, stat, name, o, cancel, fin));
    let results: Vec<Result<(), RemoteError>> = futures_util::stream::iter(fetches)
        .buffer_unordered(conn.jobs)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok((local_entries(&rec), rec))
}

/// Whether action `key` could be restored: its entry and record are valid and every output is
/// in the local CAS or on the remote (HEAD). Downloads nothing but the record; for dry runs.
pub(super) async fn lookup_action(
    conn: &Conn,
    store: &Store,
    stat: &StatCache,
    key: &Digest,
    expected: &[String],
) -> Result<Option<BTreeMap<String, OutputEntry>>, RemoteError> {
    let Some(rec) = read_entry(conn, key, expected).await? else {
        return Ok(None);
    };
    for o in rec.outputs.values() {
        let local = stat
            .verify(&store.object_path(&o.blake3), &o.blake3, o.size)
            .unwrap_or(false);
        if !local
            && !retry(&format!("HEAD cas/{}", o.sha256), || {
                conn.backend.head(Area::Cas, &o.sha256)
            })
            .await?
        {
            return Err(RemoteError::Corrupt(format!(
                "cas/{} (an output of ac/{}) is missing on the server",
                o.sha256,
                ac_key(key)
            )));
        }
    }
    Ok(Some(local_entries(&rec)))
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
    fin: Option<&Finisher>,
) -> Result<(), RemoteError> {
    let gate = conn
        .objects
        .lock()
        .map(|mut m| m.entry(o.blake3).or_default().clone())
        .unwrap_or_default();
    let _only = gate.lock().await;
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
    let tmp = tempfile::Builder::new()
        // Named like every tinylm temp file (`.remote.tinylm-tmp-<pid>-…`): if this process
        // is killed, the next build that finds the cache unused removes what it left.
        .prefix(&crate::fsutil::temp::temp_prefix(std::ffi::OsStr::new(
            "remote",
        )))
        .tempfile_in(&tmp_dir)
        .map_err(local)?;
    let writer = Writer::new(tmp.as_file().try_clone().map_err(local)?, tmp.path());
    let (sha, b3) = download(conn, &o.sha256, o.size, writer, cancel).await?;
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
    let path = tmp.into_temp_path();
    match fin {
        Some(fin) => fin.place(path, o.blake3, o.sha256.clone()).await?,
        None => {
            // The bytes are durable before the object gets its name: a crash never leaves a
            // visible object with missing bytes.
            store
                .insert_verified_object(stat, &path, o.blake3)
                .map_err(|e| RemoteError::Local(e.to_string()))?;
            // Renamed into the CAS: nothing left for the guard to delete.
            let _ = path.keep();
            remember_sha256(store, &o.blake3, &o.sha256);
        }
    }
    conn.state
        .counters
        .downloaded_objects
        .fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// A verified download waiting to enter the CAS, and who to tell when it has.
struct Placement {
    path: tempfile::TempPath,
    blake3: Digest,
    sha256: String,
    done: tokio::sync::oneshot::Sender<Result<(), RemoteError>>,
}

/// Places verified downloads into the CAS on its own threads, a batch at a time.
///
/// fsync and rename block for milliseconds each: done inline they would stall the async
/// threads that carry every other transfer's bytes. Grouping them also saves most of their
/// cost (see `Store::insert_verified_objects`): many small objects tend to arrive together.
pub(super) struct Finisher {
    jobs: std::sync::Mutex<Option<std::sync::mpsc::Sender<Placement>>>,
}

impl Finisher {
    /// Starts `threads` placing threads in `scope`; they end when the finisher is dropped.
    pub(super) fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        store: &'env Store,
        stat: &'env StatCache,
        threads: usize,
    ) -> Finisher {
        let (tx, rx) = std::sync::mpsc::channel::<Placement>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for _ in 0..threads.max(1) {
            let rx = rx.clone();
            scope.spawn(move || {
                loop {
                    // One waits for work; whatever else is queued by then joins its batch.
                    let batch: Vec<Placement> = {
                        let Ok(rx) = rx.lock() else { return };
                        let Ok(first) = rx.recv() else { return };
                        std::iter::once(first).chain(rx.try_iter()).collect()
                    };
                    place_batch(store, stat, batch);
                }
            });
        }
        Finisher {
            jobs: std::sync::Mutex::new(Some(tx)),
        }
    }

    /// Moves the verified temp file at `path` into the CAS; returns once it is there.
    async fn place(
        &self,
        path: tempfile::TempPath,
        blake3: Digest,
        sha256: String,
    ) -> Result<(), RemoteError> {
        let (done, wait) = tokio::sync::oneshot::channel();
        let sent = self.jobs.lock().ok().and_then(|j| {
            j.as_ref().map(|tx| {
                tx.send(Placement {
                    path,
                    blake3,
                    sha256,
                    done,
                })
                .is_ok()
            })
        });
        if sent != Some(true) {
            return Err(RemoteError::Cancelled);
        }
        wait.await.unwrap_or(Err(RemoteError::Cancelled))
    }
}

fn place_batch(store: &Store, stat: &StatCache, batch: Vec<Placement>) {
    let files: Vec<(&Path, Digest)> = batch.iter().map(|p| (p.path.as_ref(), p.blake3)).collect();
    let results = store.insert_verified_objects(stat, &files);
    for (p, r) in batch.into_iter().zip(results) {
        let r = match r {
            Ok(_) => {
                // Renamed into the CAS: nothing left for the guard to delete.
                let _ = p.path.keep();
                remember_sha256(store, &p.blake3, &p.sha256);
                Ok(())
            }
            Err(e) => Err(RemoteError::Local(e.to_string())),
        };
        let _ = p.done.send(r);
    }
}

/// What the writer and the sha256 thread of a download are sent.
enum Piece {
    /// The next bytes of the blob.
    Data(Arc<Pooled>),
    /// The server restarted the body from byte 0 (no range support): start over.
    Restart,
}

/// Alignment of blocks in memory and of direct writes in the file (the page size, a multiple
/// of every logical block size `O_DIRECT` asks for).
const ALIGN: usize = 4096;
/// Blocks per download: bounds its memory to `BLOCKS` × [`BATCH`] whatever the blob's size.
const BLOCKS: usize = 4;
/// Bytes written before asking the kernel to start writing them back (buffered writes only).
const WRITEBACK: u64 = 8 << 20;

/// A [`BATCH`]-byte buffer whose data starts on an [`ALIGN`] boundary, as direct I/O needs.
struct Block {
    data: Vec<u8>,
    start: usize,
    len: usize,
}

impl Block {
    fn new() -> Block {
        let data = vec![0u8; BATCH + ALIGN];
        let start = data.as_ptr().align_offset(ALIGN).min(ALIGN);
        Block {
            data,
            start,
            len: 0,
        }
    }

    fn filled(&self) -> &[u8] {
        &self.data[self.start..self.start + self.len]
    }

    /// Appends what fits of `b`; returns how much did.
    fn fill(&mut self, b: &[u8]) -> usize {
        let n = b.len().min(BATCH - self.len);
        let at = self.start + self.len;
        self.data[at..at + n].copy_from_slice(&b[..n]);
        self.len += n;
        n
    }

    fn is_full(&self) -> bool {
        self.len == BATCH
    }
}

/// A block lent to the download threads; it goes back to its pool when both are done with it.
struct Pooled {
    block: Option<Block>,
    home: tokio::sync::mpsc::UnboundedSender<Block>,
}

impl Pooled {
    fn bytes(&self) -> &[u8] {
        self.block.as_ref().map_or(&[], Block::filled)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(mut b) = self.block.take() {
            b.len = 0;
            // The pool is gone once the download ended: the block is simply freed.
            let _ = self.home.send(b);
        }
    }
}

/// The blocks of one download, reused so that memory is touched once, not once per batch.
struct Pool {
    free: tokio::sync::mpsc::UnboundedReceiver<Block>,
    home: tokio::sync::mpsc::UnboundedSender<Block>,
    made: usize,
}

impl Pool {
    fn new() -> Pool {
        let (home, free) = tokio::sync::mpsc::unbounded_channel();
        Pool {
            free,
            home,
            made: 0,
        }
    }

    /// A free block, waiting for the threads to hand one back when all are in use.
    async fn take(&mut self) -> Block {
        if let Ok(b) = self.free.try_recv() {
            return b;
        }
        if self.made < BLOCKS {
            self.made += 1;
            return Block::new();
        }
        // `self.home` keeps the channel open, so this only waits.
        self.free.recv().await.unwrap_or_else(Block::new)
    }

    fn lend(&self, b: Block) -> Arc<Pooled> {
        Arc::new(Pooled {
            block: Some(b),
            home: self.home.clone(),
        })
    }
}

/// The local end of a download, on two threads so that the network, sha256 and
/// blake3-plus-write proceed side by side instead of taking turns.
struct Sink {
    to_writer: tokio::sync::mpsc::Sender<Piece>,
    to_sha: tokio::sync::mpsc::Sender<Piece>,
    writer: tokio::task::JoinHandle<std::io::Result<Digest>>,
    sha: tokio::task::JoinHandle<String>,
}

impl Sink {
    fn new(w: Writer) -> Sink {
        let (to_writer, mut writer_rx) = tokio::sync::mpsc::channel::<Piece>(BLOCKS);
        let (to_sha, mut sha_rx) = tokio::sync::mpsc::channel::<Piece>(BLOCKS);
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = w;
            while let Some(p) = writer_rx.blocking_recv() {
                match p {
                    Piece::Data(b) => w.write(b.bytes())?,
                    Piece::Restart => w.restart()?,
                }
            }
            Ok(Digest(*w.blake.finalize().as_bytes()))
        });
        let sha = tokio::task::spawn_blocking(move || {
            let mut h = sha2::Sha256::new();
            while let Some(p) = sha_rx.blocking_recv() {
                match p {
                    Piece::Data(b) => h.update(b.bytes()),
                    Piece::Restart => h = sha2::Sha256::new(),
                }
            }
            hex(&h.finalize())
        });
        Sink {
            to_writer,
            to_sha,
            writer,
            sha,
        }
    }

    /// Hands `p` to both threads; `false` if the writer stopped (a write failed).
    async fn send(&self, p: impl Fn() -> Piece) -> bool {
        self.to_writer.send(p()).await.is_ok() && self.to_sha.send(p()).await.is_ok()
    }

    /// Waits for both threads; returns (sha256, blake3) of what was written.
    async fn finish(self) -> Result<(String, Digest), RemoteError> {
        drop(self.to_writer);
        drop(self.to_sha);
        let joined = |e: tokio::task::JoinError| RemoteError::Local(format!("download: {e}"));
        let b3 = self
            .writer
            .await
            .map_err(joined)?
            .map_err(|e| RemoteError::Local(format!("writing a download: {e}")))?;
        let sha = self.sha.await.map_err(joined)?;
        Ok((sha, b3))
    }
}

/// Writes a download to its temp file and hashes it with blake3.
///
/// Whole blocks go through a second descriptor opened with `O_DIRECT` where the filesystem
/// allows it: the bytes are already in memory (hashed from there), so copying them into the
/// page cache too only costs CPU — the largest cost of a restore once hashing is overlapped
/// with the network. The tail, and every write on filesystems without direct I/O, go through
/// the page cache, with writeback started every [`WRITEBACK`] bytes so that the fsync before
/// the object enters the CAS finds little left to write.
pub(super) struct Writer {
    file: std::fs::File,
    direct: Option<std::fs::File>,
    blake: blake3::Hasher,
    written: u64,
    flushed: u64,
}

impl Writer {
    /// A writer of `file`, the temp file at `path`.
    pub(super) fn new(file: std::fs::File, path: &Path) -> Writer {
        Writer {
            file,
            direct: open_direct(path),
            blake: blake3::Hasher::new(),
            written: 0,
            flushed: 0,
        }
    }

    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.blake.update(b);
        let aligned = b.len().is_multiple_of(ALIGN) && self.written.is_multiple_of(ALIGN as u64);
        if let Some(d) = self.direct.as_ref().filter(|_| aligned) {
            match d.write_all_at(b, self.written) {
                Ok(()) => {
                    self.written += b.len() as u64;
                    self.flushed = self.written;
                    return Ok(());
                }
                // Refused by this filesystem after all: buffered from now on.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::debug!("direct I/O refused ({e}); writing through the page cache");
                    self.direct = None;
                }
                Err(e) => return Err(e),
            }
        }
        self.file.write_all_at(b, self.written)?;
        self.written += b.len() as u64;
        if self.written - self.flushed >= WRITEBACK {
            start_writeback(&self.file, self.flushed, self.written - self.flushed);
            self.flushed = self.written;
        }
        Ok(())
    }

    fn restart(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.blake = blake3::Hasher::new();
        self.written = 0;
        self.flushed = 0;
        Ok(())
    }
}

/// A second, `O_DIRECT` descriptor of `path`, unless the filesystem (tmpfs, some network
/// filesystems) or `TINYLM_REMOTE_DIRECT_IO=0` says no.
#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if std::env::var("TINYLM_REMOTE_DIRECT_IO").is_ok_and(|v| v.trim() == "0") {
        return None;
    }
    std::fs::File::options()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<std::fs::File> {
    None
}

/// Asks the kernel to start writing `len` bytes at `offset` to disk without waiting for them.
/// Only a hint: the fsync that follows is what the CAS relies on.
#[cfg(target_os = "linux")]
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a file descriptor we own; no memory is passed.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &std::fs::File, _offset: u64, _len: u64) {}

/// Streams `cas/<sha>` into `writer`'s file, hashing as it goes; resumes from the last byte
/// after a broken transfer when the server supports ranges, else starts over. Returns
/// (sha256, blake3).
async fn download(
    conn: &Conn,
    sha: &str,
    size: u64,
    writer: Writer,
    cancel: &AtomicBool,
) -> Result<(String, Digest), RemoteError> {
    let sink = Sink::new(writer);
    let mut pool = Pool::new();
    let mut got = 0u64;
    let mut delay = BACKOFF;
    let mut attempt = 1;
    // A writer that stopped early has its error waiting in `finish`.
    macro_rules! send {
        ($p:expr) => {
            if !sink.send($p).await {
                return sink.finish().await.and(Err(RemoteError::Local(
                    "writing a download: the writer stopped".into(),
                )));
            }
        };
    }
    loop {
        let err = match conn.backend.get_stream(Area::Cas, sha, got).await {
            Ok(None) => {
                return Err(RemoteError::Corrupt(format!(
                    "cas/{sha} is missing on the server"
                )));
            }
            Ok(Some((mut stream, resumed))) => {
                if got > 0 && !resumed {
                    send!(|| Piece::Restart);
                    got = 0;
                }
                let mut broken = None;
                // Network chunks are small: they are gathered into blocks for the threads.
                let mut block = pool.take().await;
                loop {
                    let chunk = stream.next().await;
                    if cancel.load(Ordering::Relaxed) {
                        return Err(RemoteError::Cancelled);
                    }
                    let end = match chunk {
                        Some(Ok(b)) => {
                            if got + (block.len + b.len()) as u64 > size {
                                conn.state.mark_bad(sha);
                                return Err(RemoteError::Corrupt(format!(
                                    "cas/{sha} is larger than the recorded {size} bytes"
                                )));
                            }
                            conn.state
                                .counters
                                .downloaded_bytes
                                .fetch_add(b.len() as u64, Ordering::Relaxed);
                            let mut rest: &[u8] = &b;
                            while !rest.is_empty() {
                                let n = block.fill(rest);
                                rest = &rest[n..];
                                if block.is_full() {
                                    let full = std::mem::replace(&mut block, pool.take().await);
                                    got += full.len as u64;
                                    let piece = pool.lend(full);
                                    send!(|| Piece::Data(piece.clone()));
                                }
                            }
                            false
                        }
                        Some(Err(e)) => {
                            broken = Some(e);
                            true
                        }
                        None => true,
                    };
                    if end {
                        if block.len > 0 {
                            got += block.len as u64;
                            let piece = pool.lend(block);
                            send!(|| Piece::Data(piece.clone()));
                        }
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
    sink.finish().await
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
