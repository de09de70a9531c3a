//! GGUF quantization bit-identical to llama-quantize (reference path, no imatrix).
