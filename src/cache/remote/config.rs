//! Which remote cache to use: `--remote-cache` / `TINYLM_REMOTE_CACHE` over `[cache] remote`.

use crate::suggest::closest;

/// URL schemes tinylm can use as a remote cache.
pub const SCHEMES: &[&str] = &["http", "https", "s3", "gs", "az"];

/// A resolved remote cache setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The URL as given (may carry credentials; never print it, use [`RemoteConfig::display`]).
    pub url: url::Url,
    /// Upload results of actions built locally.
    pub upload: bool,
}

impl RemoteConfig {
    /// The URL without user info, for messages.
    pub fn display(&self) -> String {
        redact(&self.url)
    }

    /// The effective setting: a flag or `TINYLM_REMOTE_CACHE` wins over the manifest; `none` (or
    /// an empty value) turns a manifest's remote off. Upload defaults to off.
    pub fn resolve(
        flag_url: Option<&str>,
        flag_upload: Option<bool>,
        manifest_url: Option<&str>,
        manifest_upload: Option<bool>,
    ) -> Result<Option<RemoteConfig>, String> {
        let url = match flag_url.map(str::trim) {
            Some("" | "none") => return Ok(None),
            Some(u) => u,
            None => match manifest_url {
                Some(u) => u,
                None => return Ok(None),
            },
        };
        Ok(Some(RemoteConfig {
            url: parse_url(url)?,
            upload: flag_upload.or(manifest_upload).unwrap_or(false),
        }))
    }
}

/// Parses and checks a remote cache URL, suggesting the closest scheme for a typo.
pub fn parse_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| {
        format!(
            "`{s}` is not a URL ({e}); expected http(s)://host/prefix, s3://bucket/prefix, \
             gs://bucket/prefix or az://container/prefix"
        )
    })?;
    let scheme = match url.scheme() {
        "s3a" => "s3",
        "azure" => "az",
        other => other,
    };
    if !SCHEMES.contains(&scheme) {
        let hint = closest(scheme, SCHEMES.iter().copied())
            .map(|c| format!("; did you mean `{c}://`?"))
            .unwrap_or_default();
        return Err(format!(
            "unsupported remote cache scheme `{}://` (supported: {}){hint}",
            url.scheme(),
            SCHEMES.join(", ")
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        // As typed (`gs://`), unless it carries a password.
        let shown = if url.password().is_some() {
            redact(&url)
        } else {
            s.to_string()
        };
        return Err(format!(
            "remote cache URL `{shown}` names no host or bucket (e.g. {}://my-bucket/tinylm)",
            url.scheme()
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "remote cache URL `{}` must not have a query or fragment",
            redact(&url)
        ));
    }
    Ok(url)
}

/// `url` without user name and password.
pub fn redact(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.as_str().trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_manifest_and_none_disables() {
        let r = RemoteConfig::resolve(Some("http://a/x"), None, Some("s3://b/y"), Some(true))
            .unwrap()
            .unwrap();
        assert_eq!((r.url.as_str(), r.upload), ("http://a/x", true));
        let r = RemoteConfig::resolve(None, Some(false), Some("s3://b/y"), Some(true))
            .unwrap()
            .unwrap();
        assert_eq!((r.url.as_str(), r.upload), ("s3://b/y", false));
        assert_eq!(
            RemoteConfig::resolve(Some("none"), None, Some("s3://b"), None).unwrap(),
            None
        );
        assert_eq!(
            RemoteConfig::resolve(None, None, None, Some(true)).unwrap(),
            None
        );
    }

    #[test]
    fn bad_urls_get_clear_errors() {
        let e = parse_url("htps://cache/x").unwrap_err();
        assert!(e.contains("did you mean `https://`"), "{e}");
        assert!(
            parse_url("cache.example.com")
                .unwrap_err()
                .contains("not a URL")
        );
        assert!(
            parse_url("s3:///x")
                .unwrap_err()
                .contains("no host or bucket")
        );
        let u = parse_url("https://user:pw@cache.example/ci").unwrap();
        assert_eq!(redact(&u), "https://cache.example/ci");
    }
}
