//! The Bazel HTTP cache protocol: `GET/HEAD/PUT {base}/ac/{sha256}` and `{base}/cas/{sha256}`.
//!
//! Served by bazel-remote, nginx/Apache WebDAV and many CI caches. Bodies are streamed both ways;
//! PUTs carry `Content-Length` (bazel-remote rejects PUTs without one). Auth comes from the URL's
//! user info, `TINYLM_REMOTE_HEADER="Name: value"` (one per line) or `~/.netrc` / `$NETRC`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, RANGE};
use reqwest::{Method, RequestBuilder, StatusCode};

use super::{Area, ByteStream, RemoteError};

/// A Bazel HTTP cache at one base URL.
#[derive(Debug)]
pub struct HttpBackend {
    client: reqwest::Client,
    base: String,
    basic: Option<(String, Option<String>)>,
}

impl HttpBackend {
    /// A client for `url` (`http://` or `https://`, credentials allowed in the user info).
    pub fn new(
        url: &url::Url,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<Self, String> {
        let mut clean = url.clone();
        let _ = clean.set_username("");
        let _ = clean.set_password(None);
        let base = clean.as_str().trim_end_matches('/').to_string();
        let basic = if !url.username().is_empty() {
            Some((
                percent_decode(url.username()),
                url.password().map(percent_decode),
            ))
        } else {
            url.host_str().and_then(netrc_login)
        };
        let client = reqwest::Client::builder()
            .default_headers(extra_headers()?)
            .connect_timeout(connect_timeout)
            .read_timeout(idle_timeout)
            .user_agent(concat!("tinylm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {}", super::chain(&e)))?;
        Ok(HttpBackend {
            client,
            base,
            basic,
        })
    }

    fn request(&self, method: Method, area: Area, key: &str) -> RequestBuilder {
        let url = format!("{}/{}/{key}", self.base, area.dir());
        let rb = self.client.request(method, url);
        match &self.basic {
            Some((user, pass)) => rb.basic_auth(user, pass.as_ref()),
            None => rb,
        }
    }

    /// The whole body of a small blob, or `None` if absent; bodies over `max` bytes are refused.
    pub async fn get_small(
        &self,
        area: Area,
        key: &str,
        max: u64,
    ) -> Result<Option<Bytes>, RemoteError> {
        let resp = self
            .request(Method::GET, area, key)
            .send()
            .await
            .map_err(transport)?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        check(resp.status(), "GET")?;
        if resp.content_length().is_some_and(|n| n > max) {
            return Err(RemoteError::Corrupt(format!(
                "{}/{key} is larger than {max} bytes",
                area.dir()
            )));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.map_err(transport)?);
            if body.len() as u64 > max {
                return Err(RemoteError::Corrupt(format!(
                    "{}/{key} is larger than {max} bytes",
                    area.dir()
                )));
            }
        }
        Ok(Some(Bytes::from(body)))
    }

    /// Whether the blob exists.
    pub async fn head(&self, area: Area, key: &str) -> Result<bool, RemoteError> {
        let resp = self
            .request(Method::HEAD, area, key)
            .send()
            .await
            .map_err(transport)?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        check(resp.status(), "HEAD")?;
        Ok(true)
    }

    /// A stream of the blob's bytes from `offset`, and whether the server honoured the offset
    /// (206); `None` if the blob is absent.
    pub async fn get_stream(
        &self,
        area: Area,
        key: &str,
        offset: u64,
    ) -> Result<Option<(ByteStream, bool)>, RemoteError> {
        let mut rb = self.request(Method::GET, area, key);
        if offset > 0 {
            rb = rb.header(RANGE, format!("bytes={offset}-"));
        }
        let resp = rb.send().await.map_err(transport)?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        check(resp.status(), "GET")?;
        let resumed = resp.status() == StatusCode::PARTIAL_CONTENT;
        let stream = resp.bytes_stream().map(|c| c.map_err(transport));
        Ok(Some((Box::pin(stream), resumed)))
    }

    /// Uploads a small blob.
    pub async fn put_bytes(&self, area: Area, key: &str, bytes: Bytes) -> Result<(), RemoteError> {
        let resp = self
            .request(Method::PUT, area, key)
            .header(CONTENT_LENGTH, bytes.len())
            .body(bytes)
            .send()
            .await
            .map_err(transport)?;
        check_put(resp.status(), area, key)
    }

    /// Uploads a file, streamed from disk with its length announced up front.
    pub async fn put_file(
        &self,
        area: Area,
        key: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), RemoteError> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| RemoteError::Local(format!("{}: {e}", path.display())))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(file, super::CHUNK);
        let resp = self
            .request(Method::PUT, area, key)
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .map_err(transport)?;
        check_put(resp.status(), area, key)
    }
}

/// Headers from `TINYLM_REMOTE_HEADER` (`Name: value`, one per line).
fn extra_headers() -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    let Ok(text) = std::env::var("TINYLM_REMOTE_HEADER") else {
        return Ok(map);
    };
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!(
                "TINYLM_REMOTE_HEADER: `{line}` is not `Name: value` (e.g. `Authorization: Bearer …`)"
            ));
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("TINYLM_REMOTE_HEADER: bad header name `{}`", name.trim()))?;
        let mut value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("TINYLM_REMOTE_HEADER: bad value for `{name}`"))?;
        value.set_sensitive(true);
        map.append(name, value);
    }
    Ok(map)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn netrc_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NETRC") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".netrc"))
}

/// Login and password for `host` from the netrc file (`machine`, then `default`).
fn netrc_login(host: &str) -> Option<(String, Option<String>)> {
    let text = std::fs::read_to_string(netrc_path()?).ok()?;
    parse_netrc(&text, host)
}

/// Parses netrc text: `machine NAME login USER password PASS`, tokens in any layout; a
/// `default` entry applies to every host. `macdef` bodies (up to a blank line) are skipped.
pub(crate) fn parse_netrc(text: &str, host: &str) -> Option<(String, Option<String>)> {
    let mut found: Option<(String, Option<String>)> = None;
    let mut default: Option<(String, Option<String>)> = None;
    let mut lines = text.lines();
    let mut tokens: Vec<String> = Vec::new();
    while let Some(line) = lines.next() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"macdef") {
            for l in lines.by_ref() {
                if l.trim().is_empty() {
                    break;
                }
            }
            continue;
        }
        tokens.extend(words.iter().map(|w| w.to_string()));
    }
    let mut i = 0;
    // (is this entry for us, is it default, login, password)
    let mut current: Option<(bool, bool, Option<String>, Option<String>)> = None;
    let flush = |c: Option<(bool, bool, Option<String>, Option<String>)>,
                 found: &mut Option<(String, Option<String>)>,
                 default: &mut Option<(String, Option<String>)>| {
        if let Some((ours, is_default, Some(login), password)) = c {
            if ours && found.is_none() {
                *found = Some((login, password));
            } else if is_default && default.is_none() {
                *default = Some((login, password));
            }
        }
    };
    while i < tokens.len() {
        match tokens[i].as_str() {
            "machine" => {
                flush(current.take(), &mut found, &mut default);
                let name = tokens.get(i + 1).cloned().unwrap_or_default();
                current = Some((name.eq_ignore_ascii_case(host), false, None, None));
                i += 2;
            }
            "default" => {
                flush(current.take(), &mut found, &mut default);
                current = Some((false, true, None, None));
                i += 1;
            }
            "login" => {
                if let Some(c) = current.as_mut() {
                    c.2 = tokens.get(i + 1).cloned();
                }
                i += 2;
            }
            "password" => {
                if let Some(c) = current.as_mut() {
                    c.3 = tokens.get(i + 1).cloned();
                }
                i += 2;
            }
            "account" => i += 2,
            _ => i += 1,
        }
    }
    flush(current.take(), &mut found, &mut default);
    found.or(default)
}

fn transport(e: reqwest::Error) -> RemoteError {
    RemoteError::Transient(super::chain(&e))
}

fn check(status: StatusCode, what: &str) -> Result<(), RemoteError> {
    if status.is_success() {
        return Ok(());
    }
    let msg = format!("{what} answered HTTP {status}");
    Err(
        if status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
        {
            RemoteError::Transient(msg)
        } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            RemoteError::Refused(format!(
                "{msg}: authentication failed (set TINYLM_REMOTE_HEADER or a netrc entry)"
            ))
        } else {
            RemoteError::Refused(msg)
        },
    )
}

fn check_put(status: StatusCode, area: Area, key: &str) -> Result<(), RemoteError> {
    // A server out of room or with a blob size limit refuses this blob, not every request.
    if status == StatusCode::PAYLOAD_TOO_LARGE || status.as_u16() == 507 {
        return Err(RemoteError::Rejected(format!(
            "PUT {}/{key} answered HTTP {status}",
            area.dir()
        )));
    }
    check(status, "PUT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_machine_default_and_macdef() {
        let text = "machine other login a password b\n\
                    macdef init\nmachine cache.example login evil\n\n\
                    machine Cache.Example\n  login ci\n  password s3cret\n\
                    default login anon password x\n";
        assert_eq!(
            parse_netrc(text, "cache.example"),
            Some(("ci".into(), Some("s3cret".into())))
        );
        assert_eq!(
            parse_netrc(text, "elsewhere"),
            Some(("anon".into(), Some("x".into())))
        );
        assert_eq!(parse_netrc("machine a login u", "b"), None);
        assert_eq!(
            parse_netrc("machine a login u", "a"),
            Some(("u".into(), None))
        );
    }

    #[test]
    fn user_info_is_percent_decoded() {
        assert_eq!(percent_decode("a%40b%3A"), "a@b:");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
