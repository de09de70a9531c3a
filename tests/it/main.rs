//! tinylm's integration tests, in one binary (as cargo and ripgrep do): one link instead of
//! one per file, and one place for the helpers every test shares ([`support`]).
//!
//! Each module is one area; the tests drive the real `tinylm` binary or the library the way a
//! user or a consumer does, against golden files produced by the reference tools.

mod servers;
mod support;

mod build_eval;
mod build_quant;
mod cache_safety;
mod ci_example;
mod cli_convert_inspect;
mod cli_misc;
mod cli_run_eval;
mod engine;
mod every_command;
mod gc_shared;
mod gguf_action;
mod golden_hf_to_gguf;
mod hardening;
mod hf_bin;
mod hf_export;
mod hf_to_gguf_errors;
mod hub_source;
mod infer;
mod infer_llamacpp;
mod infer_tokenizer;
mod install_ollama;
mod layers;
mod manifest;
mod manifest_files;
mod modelfile_golden;
mod ollama_source;
mod quant_file;
mod quant_golden;
mod quant_imatrix;
mod remote_cache;
mod remote_s3;
mod remote_stores;
mod robustness;
mod schema;
mod template_detect;
mod template_lint;
mod template_render;
mod templates_engine;
mod tinylm_direct_gguf;
mod tinylm_source;
