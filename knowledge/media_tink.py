"""Documents at rest in Tink's streaming AEAD (AES256-GCM-HKDF, 64 KiB segments).

Tink (github.com/tink-crypto/tink-py) implements the construction knowledge/storage.py's
own record format was written to be (per-file key from HKDF and a random salt, AES-GCM
segments whose nonces bind their position and the last segment), and it has been
reviewed as such. New files are written in this format; files in the older format are
still read, and `manage.py encrypt_documents` rewrites them in this one.

A file is MAGIC, then Tink's ciphertext (RAW output prefix: its own header of salt and
nonce prefix, then the segments). The key is MEDIA_ENCRYPTION_KEY itself, as the
AesGcmHkdfStreamingKey's input key material; the associated data names the purpose, so a
ciphertext made for anything else with the same key does not open as a document.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

MAGIC = b"AATINK1\n"
SEGMENT_BYTES = 64 * 1024  # ciphertext segment, tag included
ASSOCIATED_DATA = b"avatar-adam document v1"
_TAG = 16
_HEADER = 1 + 32 + 7  # Tink's header: its length, a 32-byte salt, a 7-byte nonce prefix
_KEY_TYPE = "type.googleapis.com/google.crypto.tink.AesGcmHkdfStreamingKey"


class TinkDecryptionError(Exception):
    """Tink could not open the file: `why` says so in words."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


@lru_cache(maxsize=4)
def _primitive(master: bytes) -> Any:
    """The StreamingAead for this master key (built once per key)."""
    from tink import cleartext_keyset_handle, streaming_aead
    from tink.proto import aes_gcm_hkdf_streaming_pb2, common_pb2, tink_pb2

    streaming_aead.register()
    key = aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingKey(
        version=0,
        key_value=master,
        params=aes_gcm_hkdf_streaming_pb2.AesGcmHkdfStreamingParams(
            ciphertext_segment_size=SEGMENT_BYTES,
            derived_key_size=32,
            hkdf_hash_type=common_pb2.SHA256,
        ),
    )
    keyset = tink_pb2.Keyset(
        primary_key_id=1,
        key=[
            tink_pb2.Keyset.Key(
                key_data=tink_pb2.KeyData(
                    type_url=_KEY_TYPE,
                    value=key.SerializeToString(),
                    key_material_type=tink_pb2.KeyData.SYMMETRIC,
                ),
                status=tink_pb2.ENABLED,
                key_id=1,
                output_prefix_type=tink_pb2.RAW,
            )
        ],
    )
    handle = cleartext_keyset_handle.from_keyset(keyset)
    return handle.primitive(streaming_aead.StreamingAead)


class _Sink(io.RawIOBase):
    """Where Tink writes ciphertext; drained by the generator after every write."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def close(self) -> None:  # Tink closes its output when done; the parts stay readable
        pass

    def drain(self) -> bytes:
        data = b"".join(self.parts)
        self.parts.clear()
        return data


def encrypt_stream(master: bytes, chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The stored bytes for a stream of plaintext chunks (a segment or so held at a time)."""
    sink = _Sink()
    yield MAGIC
    with _primitive(master).new_encrypting_stream(sink, ASSOCIATED_DATA) as encrypting:
        for chunk in chunks:
            encrypting.write(chunk)
            if sink.parts:
                yield sink.drain()
    yield sink.drain()


class DecryptingReader(io.RawIOBase):
    """Plaintext of a stored file in this format (`raw` positioned after MAGIC)."""

    def __init__(self, raw: Any, master: bytes) -> None:
        super().__init__()
        self._raw = raw
        self._stream = _primitive(master).new_decrypting_stream(raw, ASSOCIATED_DATA)

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        from tink import TinkError

        try:
            data = self._stream.read(len(target))
        except TinkError as exc:
            text = str(exc)
            if "No matching key" in text:  # the header did not authenticate with this key
                raise TinkDecryptionError("its header does not authenticate") from None
            raise TinkDecryptionError(
                "a segment does not authenticate (the file was changed, or ends early)"
            ) from None
        count = len(data or b"")
        target[:count] = data or b""
        return count

    def close(self) -> None:
        self._raw.close()
        super().close()


def plaintext_size(stored: int) -> int:
    """The plaintext length of a stored file of `stored` bytes (MAGIC included)."""
    body = stored - len(MAGIC) - _HEADER
    first = SEGMENT_BYTES - _HEADER  # the first segment shares its room with the header
    if body <= first:
        return max(0, body - _TAG)
    segments, rest = divmod(body - first, SEGMENT_BYTES)
    if rest:
        segments += 1
    return body - _TAG * (1 + segments)
