"""The gateway's voice store: voices enrolled from reference audio, shared by every replica.

`open_voice_store(location)` picks the implementation (an SQLite file, or PostgreSQL for several
replicas); `VoiceCache` is each gateway's view of it, with bounded staleness across replicas.
"""

from voxserve.gateway.voice_store.cache import VoiceCache
from voxserve.gateway.voice_store.errors import SchemaTooNew, VoiceExists, VoiceQuotaReached
from voxserve.gateway.voice_store.record import StoredVoice
from voxserve.gateway.voice_store.store import VoiceStore, open_voice_store

__all__ = [
    "SchemaTooNew",
    "StoredVoice",
    "VoiceCache",
    "VoiceExists",
    "VoiceQuotaReached",
    "VoiceStore",
    "open_voice_store",
]
