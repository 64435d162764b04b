"""llm-gateway: an OpenAI-compatible gateway that makes every LLM call observable, safe and cheap."""

__version__ = "0.1.0"
