//! Installing built models into local runtimes (Ollama store, LM Studio).
