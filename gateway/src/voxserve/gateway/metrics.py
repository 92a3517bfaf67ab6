"""Prometheus metrics of the gateway."""

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_REQUESTS = Gauge("voxserve_gateway_active_requests", "Synthesize calls in progress")
REQUESTS = Counter("voxserve_gateway_requests_total", "Synthesize calls by outcome", ["outcome"])
FIRST_AUDIO_SECONDS = Histogram(
    "voxserve_gateway_first_audio_seconds",
    "Request arrival to first audio byte",
    buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10),
)
AUDIO_SECONDS = Counter("voxserve_gateway_audio_seconds_total", "Seconds of audio streamed to clients")
ENROLMENTS = Counter(
    "voxserve_gateway_voice_enrolments_total",
    "CreateVoice calls by outcome: completed, invalid, exists, quota, precondition, refused, "
    "upstream_error, cancelled, error",
    ["outcome"],
)
HTTP_REQUESTS = Counter(
    "voxserve_gateway_http_requests_total",
    "HTTP API requests by route template and status (101: a WebSocket accepted)",
    ["route", "status"],
)
