//! tiny-lm Lightning checkpoint + tiktoken tokenizer → Hugging Face folder.
