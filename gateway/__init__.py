"""llm-gateway: an OpenAI-compatible gateway that makes LLM calls observable, safe and cheap."""

__version__ = "0.1.0"
