"""Decrypting canary-protected benchmarks (BrowseComp, BrowseComp-ZH, xbench).

These datasets ship each question and answer as base64 of the UTF-8 text XOR-ed
with a key stream derived from the row's ``canary`` string, so the plaintext is
never crawled into training data. Two published key streams exist:

- BrowseComp and BrowseComp-ZH (OpenAI simple-evals ``browsecomp_eval.py``
  ``derive_key``; BrowseComp-ZH's ``browsecomp-zh-decrypt.py`` is the same): the
  32-byte SHA-256 digest of the canary, repeated to the text's length.
- xbench-DeepSearch (its README decryption snippet; MiroFlow's
  ``gen_xbench_ds``): the canary's own UTF-8 bytes, repeated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable


class UndecryptableError(ValueError):
    """A cell that is not base64, or not UTF-8 once decrypted with its canary."""


def sha256_key_stream(canary: str, length: int) -> bytes:
    """BrowseComp's key: SHA-256 of the canary, repeated to ``length`` bytes."""
    digest = hashlib.sha256(canary.encode("utf-8")).digest()
    return (digest * (length // len(digest) + 1))[:length]


def canary_key_stream(canary: str, length: int) -> bytes:
    """xbench's key: the canary's UTF-8 bytes, repeated to ``length`` bytes."""
    key = canary.encode("utf-8")
    if not key:
        raise UndecryptableError("the canary is empty")
    return (key * (length // len(key) + 1))[:length]


def decrypt_browsecomp(ciphertext_b64: str, canary: str) -> str:
    """A BrowseComp / BrowseComp-ZH cell's plaintext."""
    return _xor_decrypt(ciphertext_b64, canary, sha256_key_stream)


def decrypt_xbench(ciphertext_b64: str, canary: str) -> str:
    """An xbench-DeepSearch cell's plaintext."""
    return _xor_decrypt(ciphertext_b64, canary, canary_key_stream)


def _xor_decrypt(ciphertext_b64: str, canary: str, key_stream: Callable[[str, int], bytes]) -> str:
    try:
        encrypted = base64.b64decode(ciphertext_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise UndecryptableError("not base64") from None
    plain = bytes(a ^ b for a, b in zip(encrypted, key_stream(canary, len(encrypted)), strict=True))
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise UndecryptableError("not UTF-8 once decrypted with the row's canary") from None
