// Dumps llama.cpp's logits for a token sequence with f32 KV cache and no flash attention, so
// the comparison with tinylm's f32 forward pass is limited by the weights, not by the cache.
// Built by scripts/golden/infer/make_goldens.py against the refkit's static libllama.
//
//   logits MODEL.gguf TOKENS.txt OUT.bin     (TOKENS.txt: whitespace-separated ids)
// OUT.bin: n_tokens × n_vocab little-endian f32.
#include "llama.h"

#include <cstdio>
#include <fstream>
#include <vector>

int main(int argc, char ** argv) {
    if (argc != 4) {
        std::fprintf(stderr, "usage: %s MODEL.gguf TOKENS.txt OUT.bin\n", argv[0]);
        return 2;
    }
    std::vector<llama_token> toks;
    {
        std::ifstream in(argv[2]);
        long t;
        while (in >> t) toks.push_back((llama_token) t);
    }
    const int n = (int) toks.size();
    if (n == 0) { std::fprintf(stderr, "no tokens\n"); return 2; }
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { std::fprintf(stderr, "failed to load %s\n", argv[1]); return 1; }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n;
    cp.n_batch = n;
    cp.n_ubatch = n;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { std::fprintf(stderr, "failed to create context\n"); return 1; }
    llama_batch b = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        b.token[i] = toks[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n;
    if (llama_decode(ctx, b) != 0) { std::fprintf(stderr, "decode failed\n"); return 1; }
    const int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    FILE * f = std::fopen(argv[3], "wb");
    if (!f) { std::fprintf(stderr, "cannot write %s\n", argv[3]); return 1; }
    for (int i = 0; i < n; i++) {
        std::fwrite(llama_get_logits_ith(ctx, i), sizeof(float), nv, f);
    }
    std::fclose(f);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
