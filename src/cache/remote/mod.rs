//! The remote cache: read-through and write-back of action results, shared between machines.
//!
//! Layout (the Bazel HTTP cache protocol, the same on object stores):
//! - `cas/<sha256>`: output files, and one JSON *record* per action (tinylm's key, kind, key
//!   preimage, and each output's blake3, sha256 and size);
//! - `ac/<sha256("tinylm-ac-v1:" + action key)>`: a REAPI `ActionResult` ([`reapi`]) listing the
//!   outputs by sha256 plus the record at [`RECORD_PATH`], so validating servers accept it.
//!
//! A local miss asks the remote; a hit downloads each output into `tmp/` while hashing it with
//! sha256 *and* blake3, and only an object matching both enters the CAS. Anything wrong with one
//! entry (bad digest, missing blob, malformed result) is logged and the action is built locally.
//! A remote that is down, slow or refuses us is turned off for the rest of the process with one
//! warning: a build never fails because of its cache. Uploads (`upload = true`) run in the
//! background while the build goes on, blobs before the result that names them, each after a
//! HEAD says it is missing.
//!
//! The async runtime (a small multi-threaded tokio runtime) lives here, behind a blocking API.

mod config;
mod http;
mod object_store;
pub mod reapi;
mod transfer;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

pub use config::{RemoteConfig, parse_url};
pub use transfer::PushReport;

use super::{ActionRecord, Digest, OutputEntry, StatCache, Store};

/// Path of the tinylm record among an `ActionResult`'s output files.
pub const RECORD_PATH: &str = ".tinylm/record.json";
/// Read size for streamed files.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Attempts per request for transient failures (connection errors, timeouts, 5xx).
const ATTEMPTS: u32 = 3;
/// First delay between attempts; tripled each time.
const BACKOFF: Duration = Duration::from_millis(100);
/// Largest action result and record tinylm accepts.
const MAX_AC: u64 = 16 << 20;
const MAX_RECORD: u64 = 64 << 20;

/// The two halves of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// Action results.
    Ac,
    /// Content-addressed blobs.
    Cas,
}

impl Area {
    /// URL path segment.
    pub fn dir(self) -> &'static str {
        match self {
            Area::Ac => "ac",
            Area::Cas => "cas",
        }
    }
}

/// A streamed response body.
pub type ByteStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, RemoteError>> + Send + 'static>>;

/// Why a remote operation failed.
#[derive(Debug, Clone)]
pub enum RemoteError {
    /// Worth retrying: connection refused or reset, timeout, 5xx, a body cut short.
    Transient(String),
    /// The remote refuses us (authentication, method not allowed): retrying will not help.
    Refused(String),
    /// The remote refused one blob (too large, out of space).
    Rejected(String),
    /// One entry or object is wrong (digest mismatch, missing blob, malformed result).
    Corrupt(String),
    /// A local file operation failed.
    Local(String),
    /// Ctrl-C.
    Cancelled,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::Transient(m)
            | RemoteError::Refused(m)
            | RemoteError::Rejected(m)
            | RemoteError::Corrupt(m)
            | RemoteError::Local(m) => f.write_str(m),
            RemoteError::Cancelled => f.write_str("interrupted"),
        }
    }
}

/// An error and its sources on one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// The AC key of a tinylm action key: sha256 over a versioned name, so a change of the record
/// format never reads old entries.
pub fn ac_key(key: &Digest) -> String {
    sha256_hex(format!("tinylm-ac-v1:{key}").as_bytes())
}

/// Lower-case hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What the remote keeps about one action besides the `ActionResult`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteRecord {
    /// Record format.
    pub format: u32,
    /// tinylm action key (blake3).
    pub key: Digest,
    /// Action kind.
    pub kind: String,
    /// Outputs by name.
    pub outputs: BTreeMap<String, RemoteOutput>,
    /// The key preimage, for `status --explain` on machines that only downloaded the result.
    pub preimage: serde_json::Value,
}

/// One output as the remote knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteOutput {
    /// Local CAS digest.
    pub blake3: Digest,
    /// Remote CAS key.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Transfer counters of one process.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    downloaded_objects: AtomicU64,
    downloaded_bytes: AtomicU64,
    uploaded_objects: AtomicU64,
    uploaded_bytes: AtomicU64,
    already_present: AtomicU64,
    errors: AtomicU64,
}

/// Remote-cache counters of a build (in the summary and `--json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteReport {
    /// The remote, without credentials.
    pub url: String,
    /// Whether results were uploaded.
    pub upload: bool,
    /// Whether the remote was used at all (not needed when everything was cached locally).
    pub contacted: bool,
    /// Whether it was turned off after a failure.
    pub unavailable: bool,
    /// Actions restored from the remote.
    pub hits: u64,
    /// Actions the remote did not have.
    pub misses: u64,
    /// Blobs downloaded.
    pub downloaded_objects: u64,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// Blobs uploaded.
    pub uploaded_objects: u64,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Blobs not uploaded because the remote already had them.
    pub already_present: u64,
    /// Entries or objects rejected (corrupt, missing) or not accepted by the remote.
    pub errors: u64,
}

impl RemoteReport {
    /// One line for the build summary.
    pub fn summary(&self) -> String {
        let mib = |b: u64| b as f64 / 1048576.0;
        let mut s = format!(
            "remote {}: {} hits, {} objects downloaded ({:.1} MiB), {} uploaded ({:.1} MiB)",
            self.url,
            self.hits,
            self.downloaded_objects,
            mib(self.downloaded_bytes),
            self.uploaded_objects,
            mib(self.uploaded_bytes)
        );
        if self.errors > 0 {
            s += &format!(", {} errors", self.errors);
        }
        if self.unavailable {
            s += ", unavailable";
        }
        s
    }

    fn add(&mut self, o: &RemoteReport) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.downloaded_objects += o.downloaded_objects;
        self.downloaded_bytes += o.downloaded_bytes;
        self.uploaded_objects += o.uploaded_objects;
        self.uploaded_bytes += o.uploaded_bytes;
        self.already_present += o.already_present;
        self.errors += o.errors;
    }
}

/// State shared with background transfers.
#[derive(Debug)]
struct State {
    url: String,
    disabled: AtomicBool,
    counters: Counters,
    /// sha256 keys found corrupt on the remote: uploaded again even though HEAD finds them.
    bad: Mutex<BTreeSet<String>>,
}

impl State {
    /// Turns the remote off with one warning naming it.
    fn disable(&self, why: &str) {
        if !self.disabled.swap(true, Ordering::SeqCst) {
            tracing::warn!(
                "remote cache {} is unavailable ({why}); building locally without it",
                self.url
            );
        }
    }

    /// Reports a failed operation about `what`.
    fn failed(&self, what: &str, e: &RemoteError) {
        match e {
            RemoteError::Transient(m) | RemoteError::Refused(m) => self.disable(m),
            RemoteError::Corrupt(m) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    "remote cache {}: {what}: {m}; building it locally",
                    self.url
                );
            }
            RemoteError::Rejected(m) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("remote cache {}: {what} not uploaded: {m}", self.url);
            }
            RemoteError::Local(m) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("remote cache {}: {what}: {m}", self.url);
            }
            RemoteError::Cancelled => {}
        }
    }

    fn mark_bad(&self, sha: &str) {
        if let Ok(mut b) = self.bad.lock() {
            b.insert(sha.to_string());
        }
    }

    fn is_bad(&self, sha: &str) -> bool {
        self.bad.lock().is_ok_and(|b| b.contains(sha))
    }
}

/// The backends behind one interface.
#[derive(Debug)]
enum Backend {
    Http(http::HttpBackend),
    Objects(object_store::ObjectBackend),
}

impl Backend {
    async fn get_small(
        &self,
        area: Area,
        key: &str,
        max: u64,
    ) -> Result<Option<Bytes>, RemoteError> {
        match self {
            Backend::Http(b) => b.get_small(area, key, max).await,
            Backend::Objects(b) => b.get_small(area, key, max).await,
        }
    }

    async fn head(&self, area: Area, key: &str) -> Result<bool, RemoteError> {
        match self {
            Backend::Http(b) => b.head(area, key).await,
            Backend::Objects(b) => b.head(area, key).await,
        }
    }

    async fn get_stream(
        &self,
        area: Area,
        key: &str,
        offset: u64,
    ) -> Result<Option<(ByteStream, bool)>, RemoteError> {
        match self {
            Backend::Http(b) => b.get_stream(area, key, offset).await,
            Backend::Objects(b) => b.get_stream(area, key, offset).await,
        }
    }

    async fn put_bytes(&self, area: Area, key: &str, bytes: Bytes) -> Result<(), RemoteError> {
        match self {
            Backend::Http(b) => b.put_bytes(area, key, bytes).await,
            Backend::Objects(b) => b.put_bytes(area, key, bytes).await,
        }
    }

    async fn put_file(
        &self,
        area: Area,
        key: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), RemoteError> {
        match self {
            Backend::Http(b) => b.put_file(area, key, path, size).await,
            Backend::Objects(b) => b.put_file(area, key, path, size).await,
        }
    }
}

/// Runs `op` until it succeeds, fails for good, or runs out of attempts.
async fn retry<T, F, Fut>(what: &str, mut op: F) -> Result<T, RemoteError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RemoteError>>,
{
    let mut delay = BACKOFF;
    let mut attempt = 1;
    loop {
        match op().await {
            Err(RemoteError::Transient(m)) if attempt < ATTEMPTS => {
                tracing::debug!("{what}: {m}; retrying in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 3;
                attempt += 1;
            }
            r => return r,
        }
    }
}

/// A connected backend with its transfer limit, shared with background tasks.
#[derive(Debug)]
struct Conn {
    backend: Backend,
    /// Bounds concurrent blob transfers.
    permits: tokio::sync::Semaphore,
    /// How many outputs of one action download at once.
    jobs: usize,
    /// One download per object at a time: actions sharing an output (same bytes) wait for
    /// the first download and then find the object in the local cache.
    objects: Mutex<std::collections::HashMap<Digest, Arc<tokio::sync::Mutex<()>>>>,
    state: Arc<State>,
}

struct Client {
    rt: tokio::runtime::Runtime,
    conn: Arc<Conn>,
}

/// Connection settings that are not in the URL.
fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(
        std::env::var(name)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default),
    )
}

impl Client {
    fn new(cfg: &RemoteConfig, state: Arc<State>) -> Result<Client, String> {
        // Several providers may be compiled in by dependencies; pick ring explicitly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let jobs = std::env::var("TINYLM_REMOTE_JOBS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(4);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tinylm-remote")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the transfer runtime: {e}"))?;
        let connect = env_secs("TINYLM_REMOTE_CONNECT_TIMEOUT", 10);
        let idle = env_secs("TINYLM_REMOTE_TIMEOUT", 60);
        let backend = {
            let _guard = rt.enter();
            match cfg.url.scheme() {
                "http" | "https" => Backend::Http(http::HttpBackend::new(&cfg.url, connect, idle)?),
                _ => Backend::Objects(object_store::ObjectBackend::new(&cfg.url, connect, idle)?),
            }
        };
        Ok(Client {
            rt,
            conn: Arc::new(Conn {
                backend,
                permits: tokio::sync::Semaphore::new(jobs),
                jobs,
                objects: Mutex::default(),
                state,
            }),
        })
    }
}

/// A remote cache, connected on first use.
pub struct Remote {
    cfg: RemoteConfig,
    state: Arc<State>,
    client: OnceLock<Option<Client>>,
    pending: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    prefetch: Prefetched,
}

/// A fetch result: the outputs and the remote record, or `None` (miss or failure, reported).
type Fetched = Option<(BTreeMap<String, OutputEntry>, RemoteRecord)>;

/// Results of [`Remote::prefetch`] by action key: `None` while the download runs.
#[derive(Debug, Default)]
struct Prefetched {
    slots: Mutex<Slots>,
    done: std::sync::Condvar,
}

#[derive(Debug, Default)]
struct Slots {
    slots: BTreeMap<Digest, Option<Fetched>>,
    /// The prefetch ended: nothing registered now would ever be filled.
    closed: bool,
}

impl Prefetched {
    fn fill(&self, key: &Digest, r: Fetched) {
        if let Ok(mut m) = self.slots.lock()
            && let Some(slot) = m.slots.get_mut(key)
        {
            *slot = Some(r);
        }
        self.done.notify_all();
    }

    /// Marks every unfinished slot a miss (the prefetch stopped), so no one waits forever.
    fn abandon(&self) {
        if let Ok(mut m) = self.slots.lock() {
            m.closed = true;
            for slot in m.slots.values_mut().filter(|s| s.is_none()) {
                *slot = Some(None);
            }
        }
        self.done.notify_all();
    }

    /// The prefetched result for `key`, waiting for its download; `None` if it was not
    /// prefetched (or was already taken).
    fn take(&self, key: &Digest) -> Option<Fetched> {
        let mut m = self.slots.lock().ok()?;
        loop {
            match m.slots.get(key) {
                None => return None,
                Some(Some(_)) => return m.slots.remove(key).flatten(),
                Some(None) => m = self.done.wait(m).ok()?,
            }
        }
    }
}

/// What [`Remote::prefetch_from`] tells its caller about each key: the outputs its record
/// names, or `None` (a miss or a failure).
pub type RecordSeen<'a> = dyn Fn(&Digest, Option<&BTreeMap<String, OutputEntry>>) + Sync + 'a;

/// The sending end of [`Remote::prefetch_queue`].
pub struct PrefetchQueue<'a> {
    remote: &'a Remote,
    tx: tokio::sync::mpsc::UnboundedSender<(Digest, Vec<String>)>,
}

impl PrefetchQueue<'_> {
    /// Asks for the result of action `key` (with outputs `expected`); from now on a
    /// [`Remote::fetch`] of `key` waits for this download instead of starting another. Keys
    /// already downloaded, or sent after the prefetch ended, are ignored.
    pub fn send(&self, key: Digest, expected: Vec<String>) {
        let Ok(mut m) = self.remote.prefetch.slots.lock() else {
            return;
        };
        // A slot already filled was downloaded; one registered by `expect_prefetch` still
        // needs sending.
        if m.closed || m.slots.get(&key).is_some_and(Option::is_some) {
            return;
        }
        if self.tx.send((key, expected)).is_ok() {
            m.slots.insert(key, None);
        }
    }
}

/// The receiving end of [`Remote::prefetch_queue`], for [`Remote::prefetch_from`].
pub struct PrefetchKeys(tokio::sync::mpsc::UnboundedReceiver<(Digest, Vec<String>)>);

/// Fills every slot it did not fill when dropped (early return, panic).
struct Abandon<'a>(&'a Prefetched);

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        self.0.abandon();
    }
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.state.url)
            .field("upload", &self.cfg.upload)
            .finish()
    }
}

impl Remote {
    /// A remote for `cfg`; nothing is contacted until it is needed.
    pub fn new(cfg: RemoteConfig) -> Remote {
        Remote {
            state: Arc::new(State {
                url: cfg.display(),
                disabled: AtomicBool::new(false),
                counters: Counters::default(),
                bad: Mutex::new(BTreeSet::new()),
            }),
            cfg,
            client: OnceLock::new(),
            pending: Mutex::new(Vec::new()),
            prefetch: Prefetched::default(),
        }
    }

    /// The URL without credentials.
    pub fn url(&self) -> &str {
        &self.state.url
    }

    /// Whether results of local builds are uploaded.
    pub fn uploads(&self) -> bool {
        self.cfg.upload
    }

    fn client(&self) -> Option<&Client> {
        if self.state.disabled.load(Ordering::SeqCst) {
            return None;
        }
        self.client
            .get_or_init(|| match Client::new(&self.cfg, self.state.clone()) {
                Ok(c) => Some(c),
                Err(e) => {
                    self.state.disable(&e);
                    None
                }
            })
            .as_ref()
    }

    /// Looks `key` up and downloads its outputs into the local CAS. Returns the outputs and the
    /// remote's record, or `None` on a miss or any failure (already reported). A key given to
    /// a running [`Remote::prefetch`] waits for that download instead of starting another.
    pub fn fetch(
        &self,
        store: &Store,
        stat: &StatCache,
        key: &Digest,
        expected: &[String],
        cancel: &AtomicBool,
    ) -> Fetched {
        if let Some(r) = self.prefetch.take(key) {
            return r;
        }
        let client = self.client()?;
        let conn = &client.conn;
        // Not on the caller's thread: that is usually a rayon worker of the build, and rayon
        // work (hashing) inside `block_on` could steal another action's job there, which
        // would then try to enter the runtime a second time.
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                client.rt.block_on(transfer::fetch_action(
                    conn, store, stat, key, expected, cancel,
                ))
            })
            .join()
        })
        .unwrap_or_else(|_| Err(RemoteError::Local("the download thread panicked".into())));
        self.count_fetch(key, r)
    }

    fn count_fetch(&self, key: &Digest, r: Result<Fetched, RemoteError>) -> Fetched {
        let c = &self.state.counters;
        match r {
            Ok(Some(hit)) => {
                c.hits.fetch_add(1, Ordering::Relaxed);
                Some(hit)
            }
            Ok(None) => {
                c.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                self.state
                    .failed(&format!("action {}", &key.to_hex()[..12]), &e);
                None
            }
        }
    }

    /// Downloads the results of `actions` (key, expected output names) side by side, on the
    /// calling thread, until all are done or `stop` is set; [`Remote::fetch`] of one of these
    /// keys, from another thread, waits for its download. For builds whose keys are known in
    /// advance (`--locked`): downloads then overlap source hashing and each other instead of
    /// following the order of the dependency graph.
    ///
    /// `stop` (the build is done with them) or `cancel` (Ctrl-C) abandon the downloads at once:
    /// their temp files are deleted and waiting fetches get a miss.
    pub fn prefetch(
        &self,
        store: &Store,
        stat: &StatCache,
        actions: &[(Digest, Vec<String>)],
        stop: &AtomicBool,
        cancel: &AtomicBool,
    ) {
        let (queue, keys) = self.prefetch_queue();
        for (key, expected) in actions {
            queue.send(*key, expected.clone());
        }
        drop(queue);
        self.prefetch_from(store, stat, keys, &|_, _| {}, stop, cancel);
    }

    /// A queue for [`Remote::prefetch_from`]: keys sent on one end are downloaded by the
    /// prefetch reading the other, as soon as they are sent.
    pub fn prefetch_queue(&self) -> (PrefetchQueue<'_>, PrefetchKeys) {
        if let Ok(mut m) = self.prefetch.slots.lock() {
            m.closed = false;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (PrefetchQueue { remote: self, tx }, PrefetchKeys(rx))
    }

    /// Like [`Remote::prefetch`] for keys that become known while it runs (a build that
    /// learns each action's key as its inputs are hashed or their records arrive): each key
    /// sent to the queue is looked up at once, `seen` is told what its record says (the
    /// outputs, or `None` on a miss or a failure) so that keys downstream can be computed
    /// before the outputs themselves arrive, and its outputs are downloaded. Ends when the
    /// queue's sender is gone and every download is done, or at `stop` or `cancel`.
    pub fn prefetch_from(
        &self,
        store: &Store,
        stat: &StatCache,
        keys: PrefetchKeys,
        seen: &RecordSeen<'_>,
        stop: &AtomicBool,
        cancel: &AtomicBool,
    ) {
        let _abandon = Abandon(&self.prefetch);
        let mut keys = keys.0;
        // The remote is contacted only once there is something to ask it: a build that finds
        // everything in the local cache never connects.
        let first = loop {
            match keys.try_recv() {
                Ok(k) => break k,
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    if stop.load(Ordering::SeqCst) || cancel.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        let Some(client) = self.client() else {
            return;
        };
        let conn = &client.conn;
        let halt = AtomicBool::new(false);
        let halt = &halt;
        std::thread::scope(|s| {
            let fin = transfer::Finisher::start(s, store, stat, 2);
            let fin = &fin;
            let rest = futures_util::stream::unfold(keys, |mut rx| async move {
                rx.recv().await.map(|k| (k, rx))
            });
            let keys = futures_util::stream::iter([first]).chain(rest);
            // Unbounded here: looking up a record is one small request, and the transfers
            // that follow are bounded by the connection's permits, largest queued first.
            let work = keys.for_each_concurrent(None, |(key, expected)| async move {
                let r = match transfer::read_entry(conn, &key, &expected).await {
                    Ok(Some(rec)) => {
                        seen(&key, Some(&transfer::local_entries(&rec)));
                        transfer::fetch_outputs(conn, store, stat, rec, halt, Some(fin))
                            .await
                            .map(Some)
                    }
                    r => {
                        seen(&key, None);
                        r.map(|_| None)
                    }
                };
                let r = if matches!(r, Err(RemoteError::Cancelled)) {
                    None
                } else {
                    self.count_fetch(&key, r)
                };
                self.prefetch.fill(&key, r);
            });
            // Transfers notice a flag between chunks; this also ends those waiting for a
            // permit or a response.
            let watch = async {
                while !stop.load(Ordering::SeqCst) && !cancel.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                halt.store(true, Ordering::SeqCst);
            };
            client.rt.block_on(futures_util::future::select(
                Box::pin(work),
                Box::pin(watch),
            ));
        });
    }

    /// Registers the keys [`Remote::prefetch`] is about to download, before it runs, so that a
    /// fetch of one of them never starts a second download.
    pub fn expect_prefetch(&self, keys: impl IntoIterator<Item = Digest>) {
        if let Ok(mut m) = self.prefetch.slots.lock() {
            m.closed = false;
            for k in keys {
                m.slots.entry(k).or_insert(None);
            }
        }
    }

    /// Whether the remote could restore action `key` (see [`transfer::lookup_action`]): its
    /// outputs, or `None` on a miss or any failure (already reported). For dry runs: nothing
    /// but the small record is downloaded, and nothing enters the local cache.
    pub fn lookup(
        &self,
        store: &Store,
        stat: &StatCache,
        key: &Digest,
        expected: &[String],
    ) -> Option<BTreeMap<String, OutputEntry>> {
        let client = self.client()?;
        let conn = &client.conn;
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                client
                    .rt
                    .block_on(transfer::lookup_action(conn, store, stat, key, expected))
            })
            .join()
        })
        .unwrap_or_else(|_| Err(RemoteError::Local("the lookup thread panicked".into())));
        match r {
            Ok(Some(outputs)) => {
                conn.state.counters.hits.fetch_add(1, Ordering::Relaxed);
                Some(outputs)
            }
            Ok(None) => {
                conn.state.counters.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                conn.state
                    .failed(&format!("action {}", &key.to_hex()[..12]), &e);
                None
            }
        }
    }

    /// Uploads an action's outputs and result in the background (see [`Remote::finish`]).
    pub fn upload_in_background(&self, store: &Store, rec: &ActionRecord) {
        if !self.cfg.upload {
            return;
        }
        let Some(client) = self.client() else {
            return;
        };
        let conn = client.conn.clone();
        let store = store.local_only();
        let rec = rec.clone();
        let handle = client.rt.spawn(async move {
            if let Err(e) = transfer::upload_action(&conn, &store, &rec).await {
                conn.state
                    .failed(&format!("uploading `{}` results", rec.kind), &e);
            }
        });
        if let Ok(mut p) = self.pending.lock() {
            p.push(handle);
        }
    }

    /// Uploads the given actions now (`tinylm cache push`), whatever `upload` says.
    pub fn push(&self, store: &Store, records: Vec<ActionRecord>) -> PushReport {
        match self.client() {
            Some(client) => {
                client
                    .rt
                    .block_on(transfer::push(&client.conn, &store.local_only(), records))
            }
            None => PushReport::default(),
        }
    }

    /// Checks that the remote answers; returns the round-trip time.
    pub fn probe(&self) -> Result<Duration, String> {
        let client = self
            .client()
            .ok_or_else(|| "could not create a client".to_string())?;
        let t0 = Instant::now();
        // The empty blob: present on bazel-remote, a plain 404 elsewhere; either is an answer.
        let empty = sha256_hex(b"");
        client
            .rt
            .block_on(client.conn.backend.head(Area::Cas, &empty))
            .map_err(|e| e.to_string())?;
        Ok(t0.elapsed())
    }

    /// Waits for background uploads and returns this process's counters; they are also added
    /// to the totals kept in the cache (shown by `tinylm cache stats`).
    pub fn finish(&self, store: &Store) -> RemoteReport {
        let handles: Vec<_> = self
            .pending
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        if let Some(Some(client)) = self.client.get()
            && !handles.is_empty()
        {
            client.rt.block_on(async {
                for h in handles {
                    let _ = h.await;
                }
            });
        }
        let c = &self.state.counters;
        let report = RemoteReport {
            url: self.state.url.clone(),
            upload: self.cfg.upload,
            contacted: self.client.get().is_some(),
            unavailable: self.state.disabled.load(Ordering::SeqCst),
            hits: c.hits.swap(0, Ordering::Relaxed),
            misses: c.misses.swap(0, Ordering::Relaxed),
            downloaded_objects: c.downloaded_objects.swap(0, Ordering::Relaxed),
            downloaded_bytes: c.downloaded_bytes.swap(0, Ordering::Relaxed),
            uploaded_objects: c.uploaded_objects.swap(0, Ordering::Relaxed),
            uploaded_bytes: c.uploaded_bytes.swap(0, Ordering::Relaxed),
            already_present: c.already_present.swap(0, Ordering::Relaxed),
            errors: c.errors.swap(0, Ordering::Relaxed),
        };
        if report.contacted {
            add_to_totals(store, &report);
        }
        report
    }
}

/// Lifetime transfer totals of a cache directory, per remote URL.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Totals by remote URL (without credentials).
    pub remotes: BTreeMap<String, RemoteReport>,
}

fn totals_path(store: &Store) -> PathBuf {
    store.root().join("remote").join("totals.json")
}

/// The totals recorded in `store`.
pub fn totals(store: &Store) -> Totals {
    std::fs::read(totals_path(store))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn add_to_totals(store: &Store, r: &RemoteReport) {
    let path = totals_path(store);
    // Builds sharing the cache update the file in turn.
    let Ok(_lock) =
        crate::fsutil::lock::acquire(&path.with_extension("lock"), true, "a tinylm build")
    else {
        return;
    };
    let mut t = totals(store);
    let e = t
        .remotes
        .entry(r.url.clone())
        .or_insert_with(|| RemoteReport {
            url: r.url.clone(),
            ..Default::default()
        });
    e.add(r);
    e.upload = r.upload;
    if let Ok(bytes) = serde_json::to_vec_pretty(&t) {
        let _ = crate::fsutil::write_atomic(&path, &bytes);
    }
}

fn sha_map_path(store: &Store, b3: &Digest) -> PathBuf {
    let hex = b3.to_hex();
    store
        .root()
        .join("remote")
        .join("sha256")
        .join(&hex[..2])
        .join(hex)
}

/// The sha256 of local object `b3`, if known.
fn known_sha256(store: &Store, b3: &Digest) -> Option<String> {
    let s = std::fs::read_to_string(sha_map_path(store, b3)).ok()?;
    let s = s.trim();
    (s.len() == 64 && s.bytes().all(|c| c.is_ascii_hexdigit())).then(|| s.to_string())
}

/// Remembers the sha256 of object `b3` (a pure function of its content) so uploads and
/// `cache push` hash every object once.
///
/// Written atomically (temp file, rename) but not fsynced: this is a cache of a hash, and
/// [`known_sha256`] accepts only exactly 64 hex digits, so what a crash can leave (an empty
/// or zero-filled file, or no file) reads as unknown and the object is simply hashed again.
/// Two fsyncs per downloaded object were most of the cost of restoring small objects.
fn remember_sha256(store: &Store, b3: &Digest, sha: &str) {
    use std::io::Write as _;
    let path = sha_map_path(store, b3);
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut tmp = crate::fsutil::public_temp_file_for(&path)?;
        tmp.as_file_mut().write_all(sha.as_bytes())?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    };
    if let Err(e) = write() {
        tracing::debug!("cannot remember the sha256 of {b3}: {e}");
    }
}

impl Store {
    /// Uses `remote` for read-through and write-back.
    pub fn with_remote(mut self, remote: Option<RemoteConfig>) -> Store {
        self.remote = remote.map(|c| Arc::new(Remote::new(c)));
        self
    }

    /// The remote cache, if one is configured.
    pub fn remote(&self) -> Option<&Arc<Remote>> {
        self.remote.as_ref()
    }

    /// The same directory without the remote (for background tasks, which must not own it).
    pub fn local_only(&self) -> Store {
        Store {
            root: self.root.clone(),
            remote: None,
        }
    }

    /// Read-through: on a local miss, restores action `key` from the remote cache and records
    /// it locally with `preimage`. `None` when there is no remote, it has no entry, or anything
    /// about the entry is wrong (the caller then builds the action).
    pub fn fetch_remote(
        &self,
        stat: &StatCache,
        key: &Digest,
        kind: &str,
        preimage: &serde_json::Value,
        expected: &[String],
        cancel: &AtomicBool,
    ) -> Option<BTreeMap<String, OutputEntry>> {
        let remote = self.remote.as_ref()?;
        let (outputs, _) = remote.fetch(self, stat, key, expected, cancel)?;
        let rec = ActionRecord::new(*key, kind, preimage.clone(), outputs.clone());
        if let Err(e) = self.write_record(&rec) {
            tracing::warn!("cannot record downloaded action {key}: {e}");
        }
        Some(outputs)
    }

    /// Dry-run read-through: the outputs the remote would restore for action `key`, without
    /// downloading them or writing anything locally. `None` when there is no remote or it
    /// cannot restore the action.
    pub fn lookup_remote(
        &self,
        stat: &StatCache,
        key: &Digest,
        expected: &[String],
    ) -> Option<BTreeMap<String, OutputEntry>> {
        self.remote.as_ref()?.lookup(self, stat, key, expected)
    }

    /// Records an action that ran locally, and uploads it when the remote takes uploads.
    pub fn write_record_and_upload(&self, rec: &ActionRecord) -> crate::Result<()> {
        self.write_record(rec)?;
        if let Some(remote) = &self.remote {
            remote.upload_in_background(self, rec);
        }
        Ok(())
    }

    /// Waits for uploads and returns the remote counters of this process, if there is a remote.
    pub fn finish_remote(&self) -> Option<RemoteReport> {
        self.remote.as_ref().map(|r| r.finish(self))
    }
}
