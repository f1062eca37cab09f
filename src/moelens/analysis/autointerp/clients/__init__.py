"""LLM clients: an OpenAI-compatible endpoint (:mod:`.openai_compat`), a local transformers model
(:mod:`.hf`), and the response cache and accounting they share (:mod:`.base`)."""
