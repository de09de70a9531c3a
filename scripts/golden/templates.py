#!/usr/bin/env python3
"""Template fixtures and reference renderings for src/template (run with the refkit python).

1. Copies llama.cpp's real chat templates (models/templates/*.jinja) into
   tests/fixtures/templates/llama.cpp/ for the family detector's table test.
2. Extracts a few more real templates from llama.cpp's tests/test-chat-template.cpp (by model
   name) into tests/fixtures/templates/extra/, plus the Llama-2-chat and Zephyr templates
   (HF meta-llama/Llama-2-7b-chat-hf, HuggingFaceH4/zephyr-7b-beta; the same strings Ollama lists
   in template/index.json), which llama.cpp does not ship.
3. Renders fixed conversations with each family's reference Jinja template the way transformers'
   apply_chat_template does (sandboxed jinja2, trim_blocks, lstrip_blocks) into
   tests/golden/templates/render/<family>-<conversation>.txt. The leading BOS is dropped: llama.cpp
   and Ollama add it from the tokenizer, so a Go TEMPLATE must not print it. The Rust test renders
   the built-in Go templates with the same conversations and compares byte for byte.

Usage: source ~/.cache/tinylm-refkit/env.sh && $REFKIT_PY scripts/golden/templates.py
"""

import ast
import os
import re
import shutil
import sys
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = Path(__file__).resolve().parents[2]
LLAMACPP = Path(os.environ["LLAMACPP_DIR"])
FIX = ROOT / "tests/fixtures/templates"
RENDER = ROOT / "tests/golden/templates/render"

LLAMA2_CHAT = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)

ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}"
)

# test-chat-template.cpp entry name -> fixture file name
FROM_CPP_TESTS = {
    "teknium/OpenHermes-2.5-Mistral-7B": "chatml-openhermes-2.5.jinja",
    "Llama-3": "llama3-instruct.jinja",
    "google/gemma-7b-it": "gemma-7b-it.jinja",
    "Mistral-Large-Instruct-2407 (mistralai 'v3' template; modified to have system prompt at start)":
        "mistral-v3-large-2407.jinja",
    "mistralai/Mistral-7B-Instruct-v0.2 (NOTE: Old pre-v1 without a system prompt)":
        "mistral-7b-instruct-v0.2.jinja",
    "bofenghuang/vigogne-2-70b-chat": "llama2-vigogne-2-70b-chat.jinja",
    "Phi-3-mini": "phi-3-mini.jinja",
    "CohereForAI/c4ai-command-r-plus": "command-r-plus.jinja",
    "eachadea/vicuna-13b-1.1": "vicuna-13b.jinja",
    "deepseek-ai/deepseek-coder-33b-instruct": "deepseek-coder-33b.jinja",
    "openchat/openchat-3.5-0106": "openchat-3.5.jinja",
}

# family -> (reference template, bos, eos, conversations)
CONVERSATIONS = {
    "multi": [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there"},
        {"role": "user", "content": "Who are you"},
    ],
    "system": [
        {"role": "system", "content": "You are a helpful assistant"},
        {"role": "user", "content": "Hello"},
    ],
    "system-multi": [
        {"role": "system", "content": "You are a helpful assistant"},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi there"},
        {"role": "user", "content": "Who are you"},
    ],
}

REFERENCES = {
    "chatml": ("extra/chatml-openhermes-2.5.jinja", "<s>", "<|im_end|>", ["multi", "system", "system-multi"]),
    "llama3": ("extra/llama3-instruct.jinja", "<|begin_of_text|>", "<|eot_id|>", ["multi", "system", "system-multi"]),
    "llama2": ("extra/llama2-chat.jinja", "<s>", "</s>", ["multi", "system", "system-multi"]),
    # v3 puts the system prompt into the last user turn (expected_output_jinja in llama.cpp's test).
    "mistral": ("extra/mistral-v3-large-2407.jinja", "<s>", "</s>", ["multi", "system"]),
    # Gemma 2 refuses a system role.
    "gemma": ("llama.cpp/google-gemma-2-2b-it.jinja", "<bos>", "<eos>", ["multi"]),
    "phi3": ("llama.cpp/microsoft-Phi-3.5-mini-instruct.jinja", "<s>", "<|endoftext|>", ["multi", "system", "system-multi"]),
    "zephyr": ("extra/zephyr-7b-beta.jinja", "<s>", "</s>", ["multi", "system", "system-multi"]),
}


def cpp_templates():
    src = (LLAMACPP / "tests/test-chat-template.cpp").read_text()
    out = {}
    lit = r'("(?:[^"\\\n]|\\.)*")'
    pat = r'/\* \.name= \*/ ' + lit + r',\n(?:\s*//[^\n]*\n)*\s*/\* \.template_str= \*/ ' + lit + r',\n'
    for m in re.finditer(pat, src):
        name = ast.literal_eval(m.group(1))
        out[name] = ast.literal_eval(m.group(2))
    return out


def render(template: str, messages, bos: str, eos: str) -> str:
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    text = env.from_string(template).render(messages=messages, bos_token=bos, eos_token=eos,
                                            add_generation_prompt=True)
    if bos and text.startswith(bos):
        text = text[len(bos):]
    return text


VOCABS = ["gpt-2", "llama-bpe", "llama-spm", "phi-3", "qwen2", "qwen35", "command-r", "gemma-4",
          "deepseek-llm", "starcoder"]


def vocab_specials():
    """The special tokens of llama.cpp's real vocab GGUFs (control/user-defined), as small JSON."""
    import json
    from gguf import GGUFReader

    out_dir = FIX / "vocab"
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in VOCABS:
        r = GGUFReader(str(LLAMACPP / f"models/ggml-vocab-{name}.gguf"))
        f = r.fields
        def arr(key):
            fld = f[key]
            return [fld.parts[i] for i in fld.data]
        tokens = [bytes(t).decode("utf-8", "replace") for t in arr("tokenizer.ggml.tokens")]
        types = [int(t[0]) for t in arr("tokenizer.ggml.token_type")]
        def scalar(key):
            return int(f[key].parts[f[key].data[0]][0]) if key in f else None
        special = [[i, tokens[i], types[i]] for i in range(len(tokens)) if types[i] in (3, 4)]
        doc = {
            "source": f"llama.cpp models/ggml-vocab-{name}.gguf",
            "model": bytes(f["tokenizer.ggml.model"].parts[-1]).decode(),
            "n_tokens": len(tokens),
            "bos": scalar("tokenizer.ggml.bos_token_id"),
            "eos": scalar("tokenizer.ggml.eos_token_id"),
            "has_chat_template": "tokenizer.chat_template" in f,
            "special": special,
        }
        (out_dir / f"{name}.json").write_text(json.dumps(doc, ensure_ascii=False, indent=0))


def main():
    (FIX / "llama.cpp").mkdir(parents=True, exist_ok=True)
    (FIX / "extra").mkdir(parents=True, exist_ok=True)
    RENDER.mkdir(parents=True, exist_ok=True)
    for f in sorted((LLAMACPP / "models/templates").glob("*.jinja")):
        shutil.copyfile(f, FIX / "llama.cpp" / f.name)
    found = cpp_templates()
    for name, file in FROM_CPP_TESTS.items():
        if name not in found:
            sys.exit(f"test-chat-template.cpp has no entry {name!r}")
        (FIX / "extra" / file).write_text(found[name])
    (FIX / "extra/llama2-chat.jinja").write_text(LLAMA2_CHAT)
    (FIX / "extra/zephyr-7b-beta.jinja").write_text(ZEPHYR)
    for family, (path, bos, eos, convs) in REFERENCES.items():
        template = (FIX / path).read_text()
        for conv in convs:
            text = render(template, CONVERSATIONS[conv], bos, eos)
            (RENDER / f"{family}-{conv}.txt").write_text(text)
    vocab_specials()
    print("wrote", len(list((FIX / "llama.cpp").iterdir())), "llama.cpp templates,",
          len(list((FIX / "extra").iterdir())), "extra,", len(list(RENDER.iterdir())), "renderings")


if __name__ == "__main__":
    main()
