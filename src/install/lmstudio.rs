//! LM Studio: `~/.lmstudio/models/<publisher>/<model>-GGUF/<file>.gguf` (hardlink or copy).

use std::fs;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::{Error, IoContext, Result};

/// The LM Studio models directory: `$LMSTUDIO_MODELS`, else `~/.lmstudio/models`.
pub fn models_dir() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("LMSTUDIO_MODELS").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| Error::Usage("neither LMSTUDIO_MODELS nor HOME is set".into()))?;
    Ok(PathBuf::from(home).join(".lmstudio/models"))
}

fn safe_part(what: &str, s: &str) -> Result<()> {
    if s.is_empty() || s.starts_with('.') || s.contains(['/', '\\']) {
        return Err(Error::Usage(format!(
            "LM Studio {what} {s:?} must be a plain name (no '/', not starting with '.')"
        )));
    }
    Ok(())
}

/// Installs `gguf` as `<models>/<publisher>/<model>-GGUF/<file>` (`file` defaults to the GGUF's
/// own file name); returns the path and whether it was hardlinked now. An identical file
/// already there is left alone.
pub fn install(
    models: &Path,
    gguf: &Path,
    publisher: &str,
    model: &str,
    file: Option<&str>,
) -> Result<(PathBuf, bool)> {
    safe_part("publisher", publisher)?;
    safe_part("model", model)?;
    let file = match file {
        Some(f) => {
            safe_part("file name", f)?;
            std::ffi::OsString::from(f)
        }
        None => gguf
            .file_name()
            .ok_or_else(|| Error::Usage(format!("{} is not a file", gguf.display())))?
            .to_owned(),
    };
    let dir = models.join(publisher).join(format!("{model}-GGUF"));
    fs::create_dir_all(&dir).with_path(&dir)?;
    let dest = dir.join(file);
    let src_meta = fs::metadata(gguf).with_path(gguf)?;
    if fsutil::same_file(gguf, &dest) {
        return Ok((dest, false));
    }
    if let Ok(m) = fs::metadata(&dest)
        && m.len() == src_meta.len()
        && fs::read(&dest).with_path(&dest)? == fs::read(gguf).with_path(gguf)?
    {
        return Ok((dest, false));
    }
    let tmp = dir.join(format!(".tinylm-{}.part", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let linked = fsutil::hardlink_or_copy(gguf, &tmp)?;
    fs::rename(&tmp, &dest).with_path(&dest)?;
    Ok((dest, linked))
}
