//! GGUF v3: types, reader and streaming writer.
