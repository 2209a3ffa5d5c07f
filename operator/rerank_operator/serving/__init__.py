"""How the engine serves Qwen3-Reranker: vLLM's command line (engine_args), the model's prompt and the
score template that applies it server-side (prompt), and a tiny local reranker for tests and the
local mode (tiny_model)."""
