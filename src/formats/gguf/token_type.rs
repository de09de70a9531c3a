//! llama.cpp's token types (`tokenizer.ggml.token_type` values, `llama_token_type`).

/// A normal token.
pub const NORMAL: i32 = 1;
/// The unknown token.
pub const UNKNOWN: i32 = 2;
/// A control token (`<|im_start|>`, `<s>`).
pub const CONTROL: i32 = 3;
/// A user-defined (added) token.
pub const USER_DEFINED: i32 = 4;
/// An unused token (a hole in the id space, written as `[PAD<id>]`).
pub const UNUSED: i32 = 5;
/// A byte-fallback token (`<0x0A>`).
pub const BYTE: i32 = 6;
