"""Models: one call in, one `Completion` out (`endpoint`), with the retry policy, the limiter,
the response cache, the local llama.cpp server, the fine-tune registry and prices."""

from harness.model.completion import ChatRequest, Completion, is_request_error, request_failure

__all__ = ["ChatRequest", "Completion", "is_request_error", "request_failure"]
