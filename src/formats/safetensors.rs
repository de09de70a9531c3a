//! TODO(issue): safetensors
