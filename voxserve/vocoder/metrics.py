"""Prometheus metrics of the vocoder."""

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_STREAMS = Gauge("voxserve_vocoder_active_streams", "Decode streams currently registered")
STREAMS = Counter("voxserve_vocoder_streams_total", "Decode streams by outcome", ["outcome"])
BATCH_SIZE = Histogram(
    "voxserve_vocoder_batch_size", "Rows per decode forward", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
FORWARD_SECONDS = Histogram("voxserve_vocoder_forward_seconds", "Seconds per decode forward")
AUDIO_SECONDS = Counter("voxserve_vocoder_audio_seconds_total", "Seconds of audio decoded")
