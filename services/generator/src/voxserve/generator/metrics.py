"""Prometheus metrics of the generator."""

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_REQUESTS = Gauge("voxserve_generator_active_requests", "Generate calls in progress")
REQUESTS = Counter("voxserve_generator_requests_total", "Generate calls by outcome", ["outcome"])
FIRST_TOKEN_SECONDS = Histogram(
    "voxserve_generator_first_token_seconds", "Call arrival to first semantic token"
)
SEMANTIC_TOKENS = Counter("voxserve_generator_semantic_tokens_total", "Semantic tokens generated")
ENGINE_REQUESTS = Gauge("voxserve_generator_engine_requests", "Requests live in the vLLM engine")
