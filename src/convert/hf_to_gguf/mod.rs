//! Hugging Face folder (or an in-memory HF view) → GGUF, byte-identical to convert_hf_to_gguf.py.
