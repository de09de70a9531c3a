//! Object-store backends (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`)
//! with the same `ac/` + `cas/` layout as the HTTP cache, through the `object_store` crate.
//!
//! Credentials and endpoints come from each store's standard environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_REGION`, `AWS_ENDPOINT`, …; `GOOGLE_SERVICE_ACCOUNT`, …; `AZURE_STORAGE_ACCOUNT_NAME`, …).
//! Large blobs go up as multipart uploads, so memory stays bounded by a few parts.

use std::path::Path;
use std::time::Duration;

use ::object_store::aws::AmazonS3Builder;
use ::object_store::azure::MicrosoftAzureBuilder;
use ::object_store::gcp::GoogleCloudStorageBuilder;
use ::object_store::path::Path as ObjectPath;
use ::object_store::{
    ClientConfigKey, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig, WriteMultipart,
};
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::{Area, ByteStream, RemoteError};

/// Blobs up to this size are uploaded with one PUT; larger ones in parts of this size.
const PART: usize = 8 << 20;
/// Parts in flight at once during a multipart upload.
const PARTS_IN_FLIGHT: usize = 2;

/// A bucket (or container) and a key prefix.
#[derive(Debug)]
pub struct ObjectBackend {
    store: Box<dyn ObjectStore>,
    prefix: String,
}

impl ObjectBackend {
    /// A client for an `s3://`, `gs://` or `az://` URL, configured from the environment.
    pub fn new(
        url: &url::Url,
        connect_timeout: Duration,
        idle_timeout: Duration,
    ) -> Result<Self, String> {
        let mut options = ClientOptions::new()
            .with_connect_timeout(connect_timeout)
            .with_read_timeout(idle_timeout)
            // Multi-GB bodies take as long as they take; stalls are caught by the read timeout.
            .with_timeout_disabled();
        // `with_client_options` replaces what `from_env` read, so the HTTP client settings of
        // the store's environment (`AWS_ALLOW_HTTP`, `AZURE_PROXY_URL`, …) are applied here.
        let prefix = match url.scheme() {
            "s3" | "s3a" => "AWS_",
            "gs" => "GOOGLE_",
            _ => "AZURE_",
        };
        for (k, v) in std::env::vars() {
            if let Some(rest) = k.strip_prefix(prefix)
                && let Ok(key) = rest.to_ascii_lowercase().parse::<ClientConfigKey>()
            {
                options = options.with_config(key, v);
            }
        }
        // tinylm retries (and resumes downloads) itself.
        let retry = RetryConfig {
            max_retries: 0,
            ..Default::default()
        };
        let built: Result<Box<dyn ObjectStore>, ::object_store::Error> = match url.scheme() {
            "s3" | "s3a" => AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .map(|s| Box::new(s) as Box<dyn ObjectStore>),
            "gs" => GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .map(|s| Box::new(s) as Box<dyn ObjectStore>),
            "az" | "azure" => MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_client_options(options)
                .with_retry(retry)
                .build()
                .map(|s| Box::new(s) as Box<dyn ObjectStore>),
            other => return Err(format!("unsupported object store scheme `{other}`")),
        };
        let store =
            built.map_err(|e| format!("{}; {}", super::chain(&e), credentials_hint(url)))?;
        Ok(ObjectBackend {
            store,
            prefix: url.path().trim_matches('/').to_string(),
        })
    }

    fn path(&self, area: Area, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(format!("{}/{key}", area.dir()))
        } else {
            ObjectPath::from(format!("{}/{}/{key}", self.prefix, area.dir()))
        }
    }

    /// The whole body of a small blob, or `None` if absent.
    pub async fn get_small(
        &self,
        area: Area,
        key: &str,
        max: u64,
    ) -> Result<Option<Bytes>, RemoteError> {
        let r = match self.store.get(&self.path(area, key)).await {
            Ok(r) => r,
            Err(::object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(classify(e)),
        };
        if r.meta.size > max {
            return Err(RemoteError::Corrupt(format!(
                "{}/{key} is larger than {max} bytes",
                area.dir()
            )));
        }
        r.bytes().await.map(Some).map_err(classify)
    }

    /// Whether the blob exists.
    pub async fn head(&self, area: Area, key: &str) -> Result<bool, RemoteError> {
        match self.store.head(&self.path(area, key)).await {
            Ok(_) => Ok(true),
            Err(::object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(classify(e)),
        }
    }

    /// The blob's bytes from `offset` (always honoured), or `None` if absent.
    pub async fn get_stream(
        &self,
        area: Area,
        key: &str,
        offset: u64,
    ) -> Result<Option<(ByteStream, bool)>, RemoteError> {
        let opts = GetOptions {
            range: (offset > 0).then_some(GetRange::Offset(offset)),
            ..Default::default()
        };
        match self.store.get_opts(&self.path(area, key), opts).await {
            Ok(r) => {
                let s = r.into_stream().map(|c| c.map_err(classify));
                Ok(Some((Box::pin(s), offset > 0)))
            }
            Err(::object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    /// Uploads a small blob.
    pub async fn put_bytes(&self, area: Area, key: &str, bytes: Bytes) -> Result<(), RemoteError> {
        self.store
            .put(&self.path(area, key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(classify)
    }

    /// Uploads a file: one PUT when small, otherwise a multipart upload of `PART`-sized parts.
    pub async fn put_file(
        &self,
        area: Area,
        key: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), RemoteError> {
        let local = |e: std::io::Error| RemoteError::Local(format!("{}: {e}", path.display()));
        if size <= PART as u64 {
            let bytes = tokio::fs::read(path).await.map_err(local)?;
            return self.put_bytes(area, key, Bytes::from(bytes)).await;
        }
        let mut file = tokio::fs::File::open(path).await.map_err(local)?;
        let upload = self
            .store
            .put_multipart(&self.path(area, key))
            .await
            .map_err(classify)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; super::CHUNK];
        let result: Result<(), RemoteError> = async {
            loop {
                let n = file.read(&mut buf).await.map_err(local)?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(classify)?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        match result {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(classify),
            Err(e) => {
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }
}

/// Where the credentials of `url`'s store come from, for error messages.
pub(super) fn credentials_hint(url: &url::Url) -> &'static str {
    match url.scheme() {
        "s3" | "s3a" => {
            "S3 credentials come from the environment: AWS_ACCESS_KEY_ID and \
             AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, a web identity or instance role), AWS_REGION, \
             and AWS_ENDPOINT for S3-compatible servers"
        }
        "gs" => {
            "GCS credentials come from the environment: GOOGLE_SERVICE_ACCOUNT (path of a \
             service-account JSON key) or GOOGLE_SERVICE_ACCOUNT_KEY (its contents), else \
             application default credentials"
        }
        _ => {
            "Azure credentials come from the environment: AZURE_STORAGE_ACCOUNT_NAME with \
             AZURE_STORAGE_ACCOUNT_KEY, AZURE_STORAGE_SAS_KEY or a service principal \
             (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID)"
        }
    }
}

fn classify(e: ::object_store::Error) -> RemoteError {
    match e {
        ::object_store::Error::Unauthenticated { .. }
        | ::object_store::Error::PermissionDenied { .. } => RemoteError::Refused(format!(
            "{}: check the store's credentials in the environment",
            super::chain(&e)
        )),
        other => RemoteError::Transient(super::chain(&other)),
    }
}
