#!/usr/bin/env bash
# Regenerates tests/golden/modelfile/*.Modelfile from the Modelfile writer.
# The goldens pin the writer's bytes; the test also parses each one back with the port of
# Ollama's parser (src/template/modelfile.rs), so a golden that Ollama would misread fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
TINYLM_BLESS=1 cargo test --test it modelfile_golden
git status --short tests/golden/modelfile
