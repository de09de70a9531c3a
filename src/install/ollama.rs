//! Writes a model straight into Ollama's local store (`docs/ollama.md`), without the Ollama
//! binary: sha256 blobs (the GGUF hardlinked when possible), a config blob, template/system/
//! license/params/messages layers, and the manifest last, atomically.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::formats::gguf::GgufFile;
use crate::fsutil;
use crate::template::golang::push_json_string;
use crate::template::modelfile::Modelfile;
use crate::template::params::params_blob;
use crate::{Error, IoContext, Result};

/// Media type of the manifest.
pub const MEDIA_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Media type of the config blob.
pub const MEDIA_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of the GGUF weights.
pub const MEDIA_MODEL: &str = "application/vnd.ollama.image.model";
/// Media type of the Go template.
pub const MEDIA_TEMPLATE: &str = "application/vnd.ollama.image.template";
/// Media type of the system prompt.
pub const MEDIA_SYSTEM: &str = "application/vnd.ollama.image.system";
/// Media type of the parameters JSON.
pub const MEDIA_PARAMS: &str = "application/vnd.ollama.image.params";
/// Media type of the messages JSON.
pub const MEDIA_MESSAGES: &str = "application/vnd.ollama.image.messages";
/// Media type of a license text.
pub const MEDIA_LICENSE: &str = "application/vnd.ollama.image.license";

/// An Ollama model store (`$OLLAMA_MODELS` or `~/.ollama/models`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaStore {
    /// The store root (holds `blobs/` and `manifests/`).
    pub root: PathBuf,
}

impl OllamaStore {
    /// The store at `root`.
    pub fn at(root: impl Into<PathBuf>) -> Self {
        OllamaStore { root: root.into() }
    }

    /// `$OLLAMA_MODELS`, else `~/.ollama/models` (the server's store is what counts: a service
    /// install uses `/usr/share/ollama/.ollama/models`).
    pub fn from_env() -> Result<Self> {
        if let Some(p) = std::env::var_os("OLLAMA_MODELS").filter(|p| !p.is_empty()) {
            return Ok(Self::at(PathBuf::from(p)));
        }
        let home = std::env::var_os("HOME")
            .ok_or_else(|| Error::Usage("neither OLLAMA_MODELS nor HOME is set".into()))?;
        Ok(Self::at(PathBuf::from(home).join(".ollama/models")))
    }

    fn blobs(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// Path of the blob for `sha256:<hex>`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.blobs().join(digest.replacen(':', "-", 1))
    }
}

/// A model name: `model[:tag]`, `namespace/model[:tag]` or `host/namespace/model[:tag]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelName {
    /// Registry host (default `registry.ollama.ai`).
    pub host: String,
    /// Namespace (default `library`).
    pub namespace: String,
    /// Model.
    pub model: String,
    /// Tag (default `latest`).
    pub tag: String,
}

impl ModelName {
    /// Parses and validates a name with Ollama's rules.
    pub fn parse(name: &str) -> Result<ModelName> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "invalid Ollama model name {name:?}: {why} (use model[:tag], namespace/model[:tag] or host/namespace/model[:tag]; letters, digits, _ - .)"
            ))
        };
        let (path, tag) = match name.rsplit_once(':') {
            Some((p, t)) if !t.contains('/') => (p, t),
            _ => (name, "latest"),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (host, namespace, model) = match parts.as_slice() {
            [m] => ("registry.ollama.ai", "library", *m),
            [ns, m] => ("registry.ollama.ai", *ns, *m),
            [h, ns, m] => (*h, *ns, *m),
            _ => return Err(bad("too many '/'")),
        };
        let part_ok = |s: &str, max: usize, dot: bool, colon: bool| {
            !s.is_empty()
                && s.len() <= max
                && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && s.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || c == '_'
                        || c == '-'
                        || (dot && c == '.')
                        || (colon && c == ':')
                })
        };
        if !part_ok(host, 350, true, true) {
            return Err(bad("bad host"));
        }
        if !part_ok(namespace, 80, false, false) {
            return Err(bad("bad namespace"));
        }
        if !part_ok(model, 80, true, false) {
            return Err(bad("bad model"));
        }
        if !part_ok(tag, 80, true, false) {
            return Err(bad("bad tag"));
        }
        Ok(ModelName {
            host: host.into(),
            namespace: namespace.into(),
            model: model.into(),
            tag: tag.into(),
        })
    }

    fn parts(&self) -> [&str; 4] {
        [&self.host, &self.namespace, &self.model, &self.tag]
    }
}

impl std::fmt::Display for ModelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}:{}",
            self.host, self.namespace, self.model, self.tag
        )
    }
}

/// What an install did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// The manifest file.
    pub manifest: PathBuf,
    /// sha256 of the manifest bytes (the ID `ollama list` shows).
    pub manifest_digest: String,
    /// Files created or replaced (blobs, manifest); empty when nothing changed.
    pub written: Vec<PathBuf>,
    /// Whether the GGUF blob is a hardlink to the source (false: copied or already present).
    pub hardlinked: bool,
    /// Blobs of a previous manifest under the same name that nothing references any more.
    pub pruned: Vec<PathBuf>,
}

struct Layer {
    media: &'static str,
    digest: String,
    size: u64,
}

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = fs::File::open(path).with_path(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).with_path(path)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((hex_digest(&h.finalize()), n))
}

fn hex_digest(d: &[u8]) -> String {
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn sha256_bytes(b: &[u8]) -> String {
    hex_digest(&Sha256::digest(b))
}

/// Puts a text/JSON blob in the store unless it is already there.
fn put_blob(
    store: &OllamaStore,
    media: &'static str,
    bytes: &[u8],
    written: &mut Vec<PathBuf>,
) -> Result<Layer> {
    let digest = sha256_bytes(bytes);
    let path = store.blob_path(&digest);
    let fresh = fs::metadata(&path)
        .map(|m| m.len() != bytes.len() as u64)
        .unwrap_or(true);
    if fresh {
        fsutil::write_atomic_shared(&path, bytes)?;
        written.push(path);
    }
    Ok(Layer {
        media,
        digest,
        size: bytes.len() as u64,
    })
}

/// Puts the GGUF in the store: a hardlink when on the same filesystem, else a copy (temp +
/// rename). Returns the layer and whether it was hardlinked now.
fn put_gguf(store: &OllamaStore, gguf: &Path, written: &mut Vec<PathBuf>) -> Result<(Layer, bool)> {
    let (digest, size) = sha256_file(gguf)?;
    let path = store.blob_path(&digest);
    let layer = Layer {
        media: MEDIA_MODEL,
        digest,
        size,
    };
    if fs::metadata(&path)
        .map(|m| m.len() == size)
        .unwrap_or(false)
    {
        return Ok((layer, false));
    }
    let dir = store.blobs();
    fs::create_dir_all(&dir).with_path(&dir)?;
    let tmp = dir.join(format!(
        ".tinylm-{}-{}",
        std::process::id(),
        &layer.digest[7..19]
    ));
    let _ = fs::remove_file(&tmp);
    let linked = fs::hard_link(gguf, &tmp).is_ok();
    if !linked {
        // Copy and hash in one pass: the source may change while we copy, and only the
        // bytes that landed may be published under the digest.
        let mut src = fs::File::open(gguf).with_path(gguf)?;
        let mut out = fs::File::create(&tmp).with_path(&tmp)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = src.read(&mut buf).with_path(gguf)?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            out.write_all(&buf[..k]).with_path(&tmp)?;
            n += k as u64;
        }
        out.sync_all().with_path(&tmp)?;
        fsutil::set_mode(&tmp, 0o644)?;
        if hex_digest(&h.finalize()) != layer.digest || n != size {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Build(format!(
                "{} changed while it was being installed; try again",
                gguf.display()
            )));
        }
    }
    fs::rename(&tmp, &path).with_path(&path)?;
    written.push(path);
    Ok((layer, linked))
}

/// `format.HumanNumber`: 15.20M, 8B, 135K.
fn human_number(n: u64) -> String {
    const B: f64 = 1e9;
    const M: f64 = 1e6;
    let x = n as f64;
    if x >= B {
        let v = x / B;
        if v == v.floor() {
            format!("{v:.0}B")
        } else {
            format!("{v:.1}B")
        }
    } else if x >= M {
        let v = x / M;
        if v == v.floor() {
            format!("{v:.0}M")
        } else {
            format!("{v:.2}M")
        }
    } else if x >= 1e3 {
        format!("{:.0}K", x / 1e3)
    } else {
        n.to_string()
    }
}

/// Ollama's `FileType.String()` for `general.file_type`.
fn file_type_name(ft: Option<u64>) -> &'static str {
    match ft {
        Some(0) => "F32",
        Some(1) => "F16",
        Some(2) => "Q4_0",
        Some(3) => "Q4_1",
        Some(4) => "MXFP4",
        Some(7) => "Q8_0",
        Some(8) => "Q5_0",
        Some(9) => "Q5_1",
        Some(10) => "Q2_K",
        Some(11) => "Q3_K_S",
        Some(12) => "Q3_K_M",
        Some(13) => "Q3_K_L",
        Some(14) => "Q4_K_S",
        Some(15) => "Q4_K_M",
        Some(16) => "Q5_K_S",
        Some(17) => "Q5_K_M",
        Some(18) => "Q6_K",
        Some(21) => "Q2_K_S",
        Some(32) => "BF16",
        _ => "unknown",
    }
}

/// The config blob (ConfigV2), as Ollama's `json.Encoder` writes it.
fn config_json(g: &GgufFile) -> String {
    let arch = g.architecture().unwrap_or("unknown");
    let params: u64 = g.tensors.iter().map(|t| t.n_elements()).sum();
    let ft = g.get("general.file_type").and_then(|v| v.as_u64());
    let mut s = String::from("{\"model_format\":\"gguf\",\"model_family\":");
    push_json_string(&mut s, arch);
    s.push_str(",\"model_families\":[");
    push_json_string(&mut s, arch);
    s.push_str("],\"model_type\":");
    push_json_string(&mut s, &human_number(params));
    s.push_str(",\"file_type\":");
    push_json_string(&mut s, file_type_name(ft));
    s.push_str(",\"architecture\":\"amd64\",\"os\":\"linux\"}\n");
    s
}

fn messages_json(messages: &[(String, String)]) -> String {
    let mut s = String::from("[");
    for (i, (role, content)) in messages.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"role\":");
        push_json_string(&mut s, role);
        s.push_str(",\"content\":");
        push_json_string(&mut s, content);
        s.push('}');
    }
    s.push_str("]\n");
    s
}

fn layer_json(s: &mut String, l: &Layer) {
    s.push_str("{\"mediaType\":");
    push_json_string(s, l.media);
    s.push_str(",\"digest\":");
    push_json_string(s, &l.digest);
    s.push_str(&format!(",\"size\":{}}}", l.size));
}

/// The manifest path for a name, reusing the case of directories already on disk (Ollama looks
/// names up case-insensitively; two spellings must never coexist).
fn manifest_path(store: &OllamaStore, name: &ModelName) -> PathBuf {
    manifest_path_in(store, "manifests", name)
}

/// [`manifest_path`] under `dir` (`manifests` or `manifests-v2`).
fn manifest_path_in(store: &OllamaStore, dir: &str, name: &ModelName) -> PathBuf {
    let mut p = store.root.join(dir);
    for part in name.parts() {
        let existing = fs::read_dir(&p).ok().and_then(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| n.eq_ignore_ascii_case(part))
        });
        p = p.join(existing.unwrap_or_else(|| part.to_string()));
    }
    p
}

/// A model as the Ollama store holds it: its GGUF blob and the Modelfile settings of its layers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoredModel {
    /// The manifest file.
    pub manifest: PathBuf,
    /// The GGUF weights blob.
    pub gguf: PathBuf,
    /// Its digest, `sha256:<hex>`.
    pub digest: String,
    /// TEMPLATE (Go template text).
    pub template: Option<String>,
    /// SYSTEM.
    pub system: Option<String>,
    /// PARAMETERs, as the params blob stores them (a JSON object).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// LICENSE texts.
    pub licenses: Vec<String>,
    /// MESSAGEs (role, content).
    pub messages: Vec<(String, String)>,
}

/// Names of the models in the store (`name:tag`, `namespace/name:tag` outside `library`), for
/// did-you-mean.
fn stored_names(store: &OllamaStore) -> Vec<String> {
    let root = store.root.join("manifests");
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(&root)
        .min_depth(4)
        .max_depth(4)
        .into_iter()
        .flatten()
    {
        let Ok(rel) = e.path().strip_prefix(&root) else {
            continue;
        };
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if let [host, ns, model, tag] = parts.as_slice() {
            out.push(match (host.as_str(), ns.as_str()) {
                ("registry.ollama.ai", "library") => format!("{model}:{tag}"),
                ("registry.ollama.ai", _) => format!("{ns}/{model}:{tag}"),
                _ => format!("{host}/{ns}/{model}:{tag}"),
            });
        }
    }
    out.sort();
    out
}

/// Reads model `name` (`name[:tag]`) from the store: its manifest, GGUF blob and the template,
/// system, params, license and messages layers. Fails clearly when the model is missing, is not
/// a GGUF model (an MLX safetensors import) or a blob is gone.
pub fn read_model(store: &OllamaStore, name: &str) -> Result<StoredModel> {
    let parsed = ModelName::parse(name)?;
    let path = manifest_path(store, &parsed);
    // Newer Ollama releases may keep a model's manifest only under `manifests-v2/`.
    let v2 = manifest_path_in(store, "manifests-v2", &parsed);
    let path = if !path.exists() && v2.exists() {
        v2
    } else {
        path
    };
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let names = stored_names(store);
            let hint = crate::suggest::closest(name, names.iter().map(String::as_str))
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            return Err(Error::Build(format!(
                "ollama model `{name}` is not in the Ollama store at {} (no {}){hint}; pull it with `ollama pull {name}` or set OLLAMA_MODELS",
                store.root.display(),
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let bad = |msg: &str| Error::format(&path, format!("not an Ollama manifest: {msg}"));
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| bad(&e.to_string()))?;
    let layers = v["layers"]
        .as_array()
        .ok_or_else(|| bad("no `layers` list"))?;
    let mut out = StoredModel {
        manifest: path.clone(),
        ..Default::default()
    };
    let checked_blob = |digest: &str, size: Option<u64>| -> Result<PathBuf> {
        let blob = store.blob_path(digest);
        let meta = fs::metadata(&blob).map_err(|e| {
            Error::Build(format!(
                "ollama model `{name}`: blob {digest} of {} is missing ({e}); run `ollama pull {name}` again",
                path.display()
            ))
        })?;
        if size.is_some_and(|s| s != meta.len()) {
            return Err(Error::format(
                &blob,
                format!(
                    "{} bytes, but the manifest of `{name}` says {}; run `ollama pull {name}` again",
                    meta.len(),
                    size.unwrap_or_default()
                ),
            ));
        }
        Ok(blob)
    };
    for l in layers {
        let media = l["mediaType"].as_str().unwrap_or_default();
        let digest = l["digest"]
            .as_str()
            .filter(|d| {
                let hex = d
                    .strip_prefix("sha256:")
                    .or_else(|| d.strip_prefix("sha256-"));
                hex.is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            })
            .ok_or_else(|| bad("a layer without a sha256 digest"))?
            .replacen('-', ":", 1)
            .to_ascii_lowercase();
        let size = l["size"].as_u64();
        let read_text = |what: &str| -> Result<String> {
            let blob = checked_blob(&digest, size)?;
            let b = fs::read(&blob).with_path(&blob)?;
            String::from_utf8(b).map_err(|_| {
                Error::format(&blob, format!("the {what} layer of `{name}` is not UTF-8"))
            })
        };
        match media {
            MEDIA_MODEL => {
                if !out.digest.is_empty() {
                    return Err(bad("more than one model layer"));
                }
                let blob = checked_blob(&digest, size)?;
                out.gguf = blob;
                out.digest = digest;
            }
            MEDIA_TEMPLATE | "application/vnd.ollama.image.prompt" => {
                out.template = Some(read_text("template")?)
            }
            MEDIA_SYSTEM => out.system = Some(read_text("system")?),
            MEDIA_LICENSE => out.licenses.push(read_text("license")?),
            MEDIA_PARAMS => {
                let t = read_text("params")?;
                match serde_json::from_str::<serde_json::Value>(&t) {
                    Ok(serde_json::Value::Object(m)) => out.params = m,
                    _ => {
                        return Err(Error::format(
                            &path,
                            format!("the params layer of `{name}` is not a JSON object"),
                        ));
                    }
                }
            }
            MEDIA_MESSAGES => {
                let t = read_text("messages")?;
                let list: Vec<serde_json::Value> = serde_json::from_str(&t).map_err(|e| {
                    Error::format(&path, format!("the messages layer of `{name}`: {e}"))
                })?;
                out.messages = list
                    .iter()
                    .filter_map(|m| {
                        Some((
                            m["role"].as_str()?.to_string(),
                            m["content"].as_str()?.to_string(),
                        ))
                    })
                    .collect();
            }
            "application/vnd.ollama.image.tensor" | "application/vnd.ollama.image.json" => {
                return Err(Error::Build(format!(
                    "ollama model `{name}` is a safetensors (MLX) import, not a GGUF model; use its Hugging Face source instead"
                )));
            }
            // Projectors, adapters, draft models: not part of what tinylm builds from.
            _ => tracing::debug!("ollama model `{name}`: ignoring layer {media}"),
        }
    }
    if out.digest.is_empty() {
        return Err(Error::Build(format!(
            "ollama model `{name}` ({}) has no GGUF model layer",
            path.display()
        )));
    }
    Ok(out)
}

/// Installs `gguf` with the settings of `mf` (TEMPLATE, SYSTEM, PARAMETER, LICENSE, MESSAGE; its
/// FROM is ignored) as `name`. Writes nothing when the model is already installed unchanged.
pub fn install(
    store: &OllamaStore,
    gguf: &Path,
    mf: &Modelfile,
    name: &str,
) -> Result<InstallReport> {
    let name = ModelName::parse(name)?;
    // Validate everything before touching the store.
    if let Some(t) = &mf.template {
        crate::template::gotmpl::parse(t).map_err(|e| {
            Error::Build(format!(
                "TEMPLATE does not parse, Ollama would fail every request: {e}"
            ))
        })?;
    }
    let params = if mf.parameters.is_empty() {
        None
    } else {
        Some(params_blob(&mf.parameters).map_err(|e| Error::Build(e.to_string()))?)
    };
    for (role, _) in &mf.messages {
        if !crate::template::modelfile::MESSAGE_ROLES.contains(&role.as_str()) {
            return Err(Error::Build(format!(
                "MESSAGE role {role:?} is not system, user or assistant"
            )));
        }
    }
    let g = GgufFile::open(gguf)?;
    let mut written = Vec::new();
    let (model, hardlinked) = put_gguf(store, gguf, &mut written)?;
    let mut layers = vec![model];
    if let Some(t) = &mf.template {
        layers.push(put_blob(store, MEDIA_TEMPLATE, t.as_bytes(), &mut written)?);
    }
    if let Some(s) = &mf.system {
        layers.push(put_blob(store, MEDIA_SYSTEM, s.as_bytes(), &mut written)?);
    }
    for l in &mf.licenses {
        layers.push(put_blob(store, MEDIA_LICENSE, l.as_bytes(), &mut written)?);
    }
    if let Some(p) = &params {
        layers.push(put_blob(store, MEDIA_PARAMS, p.as_bytes(), &mut written)?);
    }
    if !mf.messages.is_empty() {
        layers.push(put_blob(
            store,
            MEDIA_MESSAGES,
            messages_json(&mf.messages).as_bytes(),
            &mut written,
        )?);
    }
    let config = put_blob(
        store,
        MEDIA_CONFIG,
        config_json(&g).as_bytes(),
        &mut written,
    )?;

    let mut m = String::from("{\"schemaVersion\":2,\"mediaType\":");
    push_json_string(&mut m, MEDIA_MANIFEST);
    m.push_str(",\"config\":");
    layer_json(&mut m, &config);
    m.push_str(",\"layers\":[");
    for (i, l) in layers.iter().enumerate() {
        if i > 0 {
            m.push(',');
        }
        layer_json(&mut m, l);
    }
    m.push_str("]}\n");

    let path = manifest_path(store, &name);
    let old = fs::read(&path).ok();
    let mut pruned = Vec::new();
    if old.as_deref() != Some(m.as_bytes()) {
        fsutil::write_atomic_shared(&path, m.as_bytes())?;
        written.push(path.clone());
        if let Some(old) = old {
            // Like `ollama create` over an existing name: drop layers nothing uses any more.
            let candidates = manifest_digests(&old).unwrap_or_default();
            pruned = remove_unreferenced(store, &candidates)?;
        }
    }
    Ok(InstallReport {
        manifest: path,
        manifest_digest: sha256_bytes(m.as_bytes()),
        written,
        hardlinked,
        pruned,
    })
}

/// Every blob digest a manifest references (config and layers).
fn manifest_digests(bytes: &[u8]) -> Option<BTreeSet<String>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let mut out = BTreeSet::new();
    out.insert(
        v["config"]["digest"]
            .as_str()?
            .to_ascii_lowercase()
            .replacen('-', ":", 1),
    );
    for l in v["layers"].as_array()? {
        out.insert(
            l["digest"]
                .as_str()?
                .to_ascii_lowercase()
                .replacen('-', ":", 1),
        );
    }
    Some(out)
}

/// Digests referenced by every manifest in the store (`manifests/` and `manifests-v2/`, four
/// levels), or `None` if any manifest cannot be read (then nothing may be deleted — Ollama's
/// pruning makes the same choice).
fn referenced(store: &OllamaStore) -> Option<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for dir in ["manifests", "manifests-v2"] {
        let root = store.root.join(dir);
        if !root.exists() {
            continue;
        }
        for e in walkdir::WalkDir::new(&root).min_depth(4).max_depth(4) {
            let e = e.ok()?;
            if e.file_type().is_dir() {
                continue;
            }
            let bytes = fs::read(e.path()).ok()?;
            all.extend(manifest_digests(&bytes)?);
            // A manifests-v2 entry may itself be a link to a manifest blob.
            if let Ok(target) = fs::canonicalize(e.path())
                && let Some(n) = target.file_name().and_then(|n| n.to_str())
                && let Some(hex) = n.strip_prefix("sha256-")
            {
                all.insert(format!("sha256:{}", hex.to_ascii_lowercase()));
            }
        }
    }
    Some(all)
}

fn remove_unreferenced(store: &OllamaStore, candidates: &BTreeSet<String>) -> Result<Vec<PathBuf>> {
    let Some(keep) = referenced(store) else {
        tracing::warn!(
            "a manifest in {} cannot be read; not deleting any blob",
            store.root.display()
        );
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for d in candidates.difference(&keep) {
        let p = store.blob_path(d);
        match fs::remove_file(&p) {
            Ok(()) => removed.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(removed)
}

/// What an uninstall removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UninstallReport {
    /// The manifest removed.
    pub manifest: PathBuf,
    /// Blobs no other manifest referenced.
    pub removed_blobs: Vec<PathBuf>,
}

/// Removes model `name` from the store: its manifest, then its blobs that no other manifest
/// references.
pub fn uninstall(store: &OllamaStore, name: &str) -> Result<UninstallReport> {
    let parsed = ModelName::parse(name)?;
    let path = manifest_path(store, &parsed);
    // Newer Ollama releases may keep a model's manifest only under `manifests-v2/`.
    let v2 = manifest_path_in(store, "manifests-v2", &parsed);
    let path = if !path.exists() && v2.exists() {
        v2
    } else {
        path
    };
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Usage(format!(
                "no model {parsed} in the Ollama store {} ({} does not exist)",
                store.root.display(),
                path.display()
            )));
        }
        Err(e) => return Err(Error::io(&path, e)),
    };
    let candidates = manifest_digests(&bytes)
        .ok_or_else(|| Error::format(&path, "not an Ollama manifest (no config/layers digests)"))?;
    fs::remove_file(&path).with_path(&path)?;
    // Drop now-empty name directories (tag → model → namespace → host).
    let stop = store.root.join("manifests");
    let mut dir = path.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        if d == stop || fs::remove_dir(&d).is_err() {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    let removed_blobs = remove_unreferenced(store, &candidates)?;
    Ok(UninstallReport {
        manifest: path,
        removed_blobs,
    })
}

/// Runs `ollama create NAME -f MODELFILE`, after checking the Modelfile exists (a missing `-f`
/// file makes `ollama create` silently import the current directory).
pub fn create_via_cli(modelfile: &Path, name: &str) -> Result<()> {
    ModelName::parse(name)?;
    if !modelfile.is_file() {
        return Err(Error::Usage(format!(
            "Modelfile {} does not exist (ollama create would silently import the current directory instead)",
            modelfile.display()
        )));
    }
    let status = std::process::Command::new("ollama")
        .arg("create")
        .arg(name)
        .arg("-f")
        .arg(modelfile)
        .status()
        .map_err(|e| {
            Error::Usage(format!(
                "cannot run the ollama binary ({e}); install Ollama or drop --via-cli to write the store directly"
            ))
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Build(format!(
            "ollama create {name} failed ({status})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let n = ModelName::parse("tiny").unwrap();
        assert_eq!(n.to_string(), "registry.ollama.ai/library/tiny:latest");
        let n = ModelName::parse("tinylm/foo:q8_0").unwrap();
        assert_eq!(
            (n.namespace.as_str(), n.model.as_str(), n.tag.as_str()),
            ("tinylm", "foo", "q8_0")
        );
        let n = ModelName::parse("localhost:5000/ns/m:v1.2").unwrap();
        assert_eq!(n.host, "localhost:5000");
        for bad in ["", "a/b/c/d", "-x", "ns.x/m", "m:", "m:a/b", "bad name"] {
            assert!(ModelName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn human_numbers_like_ollama() {
        assert_eq!(human_number(15_200_000), "15.20M");
        assert_eq!(human_number(135_500_000), "135.50M");
        assert_eq!(human_number(8_000_000_000), "8B");
        assert_eq!(human_number(1_500_000_000), "1.5B");
        assert_eq!(human_number(124_000), "124K");
        assert_eq!(human_number(999), "999");
    }
}
