"""Who is calling, as far as stored voices care: the scope a voice belongs to.

With API keys, a voice belongs to the key that created it, recorded as a fingerprint of the key
(the key itself is never stored or logged); without keys every caller shares one scope.
"""

from __future__ import annotations

import hashlib

import grpc

from voxserve.common.auth import METADATA_KEY, SCHEME

SHARED_SCOPE = ""


def key_fingerprint(key: str | bytes) -> str:
    """A stable, non-reversible name for an API key (keys are long random strings)."""
    raw = key.encode("utf-8") if isinstance(key, str) else key
    return "key-" + hashlib.sha256(raw).hexdigest()[:32]


def caller_scope(context: grpc.aio.ServicerContext, keyed: bool) -> str:
    """The scope of the call's voices. The key interceptor has already refused calls without a
    valid key, so with keys the authorization header is present and well formed."""
    if not keyed:
        return SHARED_SCOPE
    for name, value in context.invocation_metadata() or ():
        if name == METADATA_KEY:
            text = value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value
            return key_fingerprint(text[len(SCHEME) :])
    raise PermissionError("a keyed gateway served a call without an authorization header")
