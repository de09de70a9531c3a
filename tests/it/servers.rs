//! Real cache servers for remote-cache tests: nginx with WebDAV and moto's S3 server, started on
//! 127.0.0.1 with a free port and a temp root, stopped when dropped.
//!
//! A test whose server is not installed prints why and returns early; CI installs both
//! (`.ci/run`), so there they always run.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 30 s");
}

fn find_program(env: &str, names: &[&str], extra: &[PathBuf]) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    for d in dirs {
        for n in names {
            let p = d.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    extra.iter().find(|p| p.is_file()).cloned()
}

/// nginx serving a WebDAV root: `PUT` creates files (and directories), `GET`/`HEAD` read them.
pub struct Nginx {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// Listening port.
    pub port: u16,
}

/// Options of a test nginx.
#[derive(Default, Clone)]
pub struct NginxOpts {
    /// `limit_rate` for responses, e.g. `"200k"`.
    pub limit_rate: Option<&'static str>,
    /// Accepted `Authorization` values; anything else gets 401.
    pub auth: Vec<&'static str>,
    /// Serve this existing root (a second server over the first one's files).
    pub root: Option<PathBuf>,
}

impl Nginx {
    /// Starts nginx, or returns `None` (after printing why) if it is not installed.
    pub fn start(opts: NginxOpts) -> Option<Nginx> {
        let Some(bin) = find_program("TINYLM_TEST_NGINX", &["nginx"], &[]) else {
            eprintln!(
                "SKIPPED: nginx not found (install the Debian package `nginx`, as .ci/run does, \
                 or set TINYLM_TEST_NGINX)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let root = opts.root.clone().unwrap_or_else(|| dir.path().join("root"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let port = free_port();
        let d = dir.path().display();
        let limit = opts
            .limit_rate
            .map(|r| format!("limit_rate {r};"))
            .unwrap_or_default();
        let (auth_map, auth_check) = if opts.auth.is_empty() {
            (String::new(), String::new())
        } else {
            let allowed: String = opts
                .auth
                .iter()
                .map(|a| format!("    \"{a}\" 0;\n"))
                .collect();
            (
                format!("  map $http_authorization $denied {{\n    default 1;\n{allowed}  }}\n"),
                "if ($denied) { return 401; }".to_string(),
            )
        };
        // One process (no workers to outlive a kill), everything under the temp dir.
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
             events {{ worker_connections 128; }}\n\
             http {{\n  log_format t \"$request $status len=$http_content_length te=$http_transfer_encoding sent=$body_bytes_sent\";\n\
               access_log {d}/access.log t;\n\
               client_body_temp_path {d}/tmp;\n  proxy_temp_path {d}/tmp;\n  fastcgi_temp_path {d}/tmp;\n\
               uwsgi_temp_path {d}/tmp;\n  scgi_temp_path {d}/tmp;\n{auth_map}\
               server {{\n    listen 127.0.0.1:{port};\n    root {};\n    client_max_body_size 0;\n\
                 location / {{\n      {auth_check}\n      dav_methods PUT;\n      create_full_put_path on;\n\
                   dav_access user:rw group:r all:r;\n      {limit}\n    }}\n  }}\n}}\n",
            root.display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = dir.path().join("error.log");
        let mut child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&log)
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx");
        wait_for_port(port, &mut child, "nginx", &log);
        Some(Nginx {
            child: Some(child),
            dir,
            port,
        })
    }

    /// The cache URL (`/cache` prefix on this server).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/cache", self.port)
    }

    /// The WebDAV root on disk.
    pub fn root(&self) -> PathBuf {
        let conf = std::fs::read_to_string(self.dir.path().join("nginx.conf")).unwrap();
        let line = conf
            .lines()
            .find(|l| l.trim_start().starts_with("root "))
            .unwrap();
        PathBuf::from(
            line.trim()
                .trim_start_matches("root ")
                .trim_end_matches(';'),
        )
    }

    /// Where the cache's blobs are on disk.
    pub fn cache_dir(&self) -> PathBuf {
        self.root().join("cache")
    }

    /// The access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// Kills the server at once (open connections are cut).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// moto's S3-compatible server (`pip install 'moto[server]'`).
pub struct Moto {
    child: Option<Child>,
    _dir: tempfile::TempDir,
    /// Listening port.
    pub port: u16,
}

impl Moto {
    /// Starts `moto_server`, or returns `None` (after printing why) if it is not installed.
    pub fn start() -> Option<Moto> {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        let venv = home.join(".cache/tinylm-ci/moto/bin/moto_server");
        let Some(bin) = find_program("TINYLM_TEST_MOTO_SERVER", &["moto_server"], &[venv]) else {
            eprintln!(
                "SKIPPED: moto_server not found (`pip install 'moto[server]'`, as .ci/run does into \
                 ~/.cache/tinylm-ci/moto, or set TINYLM_TEST_MOTO_SERVER)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("moto.log");
        let mut child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("moto.err")).unwrap())
            .spawn()
            .expect("starting moto_server");
        wait_for_port(
            port,
            &mut child,
            "moto_server",
            &dir.path().join("moto.err"),
        );
        Some(Moto {
            child: Some(child),
            _dir: dir,
            port,
        })
    }

    /// The environment that points tinylm's S3 client at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            (
                "AWS_ENDPOINT".into(),
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) {
        let (status, _) = http(self.port, "PUT", &format!("/{name}"), b"");
        assert_eq!(status, 200, "creating bucket {name}");
    }

    /// Stops the server.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A plain HTTP/1.1 request (no auth); returns status and body.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let head_end = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response head");
    let head = String::from_utf8_lossy(&resp[..head_end]).into_owned();
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = resp[head_end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 4 + n..];
    }
}

/// A copy of the repository's demo project (two tiny-lm runs → GGUFs, quants, Modelfiles, a
/// release; 20 actions), without a lock file: tests hand machine A's lock to machine B the way
/// a commit would.
pub fn demo_copy() -> tempfile::TempDir {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo.join("tinylm.toml"), dir.path().join("tinylm.toml")).unwrap();
    for e in walkdir::WalkDir::new(repo.join("examples"))
        .into_iter()
        .flatten()
    {
        let rel = e.path().strip_prefix(repo).unwrap();
        let dest = dir.path().join(rel);
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
        } else if e.file_type().is_file() {
            std::fs::copy(e.path(), &dest).unwrap();
            crate::support::backdate(&dest);
        }
    }
    dir
}

/// Runs tinylm in `dir` with the cache in `cache`, extra environment, and `args`.
pub fn tinylm(dir: &Path, cache: &Path, env: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(crate::support::bin());
    cmd.current_dir(dir)
        .arg("--cache")
        .arg(cache)
        .args(args)
        .env_remove("TINYLM_CACHE")
        .env_remove("TINYLM_REMOTE_CACHE")
        .env_remove("TINYLM_REMOTE_UPLOAD")
        .env_remove("TINYLM_REMOTE_HEADER")
        .env_remove("RUST_LOG")
        // Keep failing tests fast.
        .env("TINYLM_REMOTE_CONNECT_TIMEOUT", "5")
        .env("TINYLM_REMOTE_TIMEOUT", "20");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `tinylm --json build …`, asserting success; returns the report and stderr.
pub fn build(
    dir: &Path,
    cache: &Path,
    env: &[(String, String)],
    args: &[&str],
) -> (serde_json::Value, String) {
    let mut all = vec!["--json", "build"];
    all.extend_from_slice(args);
    let out = tinylm(dir, cache, env, &all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "build failed: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    (serde_json::from_slice(&out.stdout).unwrap(), stderr)
}

/// Every object in the local CAS hashes to its name, and nothing is left in `tmp/`.
pub fn assert_cache_clean(cache: &Path) {
    let mut n = 0;
    for e in walkdir::WalkDir::new(cache.join("cas"))
        .min_depth(2)
        .into_iter()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let d = tinylm::cache::hash_file(e.path()).unwrap();
        assert_eq!(d.to_hex(), name, "corrupt object {}", e.path().display());
        n += 1;
    }
    assert!(n > 0, "no objects in {}", cache.display());
    let left: Vec<_> = std::fs::read_dir(cache.join("tmp"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in tmp/: {left:?}");
}

/// Every file under `dir`, with its bytes, by relative path.
pub fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Copies `from`'s lock file to `to` (a commit and a checkout).
pub fn copy_lock(from: &Path, to: &Path) {
    std::fs::copy(from.join("tinylm.lock"), to.join("tinylm.lock")).unwrap();
}

/// Number of lines of `stderr` containing `needle`.
pub fn lines_with(stderr: &str, needle: &str) -> usize {
    stderr.lines().filter(|l| l.contains(needle)).count()
}
