//! `tinylm.toml`: typed manifest, validation with spans, and the JSON schema.
