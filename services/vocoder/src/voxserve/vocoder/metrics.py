"""Prometheus metrics of the vocoder."""

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_STREAMS = Gauge("voxserve_vocoder_active_streams", "Decode streams currently registered")
STREAMS = Counter(
    "voxserve_vocoder_streams_total",
    "Decode streams by outcome: completed, cancelled (the caller went away), invalid, refused "
    "(stream limit), error",
    ["outcome"],
)
ENCODES = Counter(
    "voxserve_vocoder_voice_encodes_total",
    "EncodeVoice calls by outcome: completed, cancelled, invalid, precondition (no encoder in the "
    "pack), refused (encode limit), error",
    ["outcome"],
)
BATCH_SIZE = Histogram(
    "voxserve_vocoder_batch_size", "Rows per decode forward", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
BATCH_TOKENS = Histogram(
    "voxserve_vocoder_batch_tokens",
    "Tokens per decode forward (rows x window length, context included)",
    buckets=(32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
)
QUEUE_WAIT_SECONDS = Histogram(
    "voxserve_vocoder_queue_wait_seconds",
    "From a stream's window becoming ready to its forward starting",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FORWARDS_RUNNING = Gauge(
    "voxserve_vocoder_forwards_running", "Decode forwards in progress (at most the device's lanes)"
)
FORWARD_SECONDS = Histogram(
    "voxserve_vocoder_forward_seconds",
    "Seconds per decode forward",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
AUDIO_SECONDS = Counter("voxserve_vocoder_audio_seconds_total", "Seconds of audio decoded")
LEAD_SECONDS = Histogram(
    "voxserve_vocoder_lead_seconds",
    "Per chunk after the first: audio its client still held when the chunk was decoded "
    "(negative: the client had been starved that long)",
    buckets=(-1.0, -0.5, -0.2, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0),
)
# The scheduler's cost model of a forward: fixed + per_window_token x tokens
# + per_batch_token x rows x tokens (see cost_model.py).
COST_FIXED_SECONDS = Gauge("voxserve_vocoder_cost_fixed_seconds", "Cost model: seconds every forward pays")
COST_WINDOW_TOKEN_SECONDS = Gauge(
    "voxserve_vocoder_cost_window_token_seconds", "Cost model: seconds per window token, whatever the rows"
)
COST_BATCH_TOKEN_SECONDS = Gauge(
    "voxserve_vocoder_cost_batch_token_seconds", "Cost model: seconds per token of every row (rows x tokens)"
)
