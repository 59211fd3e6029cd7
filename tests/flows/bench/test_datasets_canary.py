"""The canary ciphers against vectors computed outside our code.

The BrowseComp vectors were computed with ``sha256sum`` and a byte-wise XOR by
hand, the xbench one on paper ('6'^'a' = 'W', '0'^'b' = 'R'), so a bug shared by
an encrypt and a decrypt function cannot pass here.
"""

from __future__ import annotations

import pytest

from mirograph.flows.bench.datasets.canary import (
    UndecryptableError,
    decrypt_browsecomp,
    decrypt_xbench,
    sha256_key_stream,
)

#: sha256sum of "canary-1".
DIGEST = "8cdb95b89b37d076949786b38818c9182a8b7798c0cd15757e07d3a3ef8c954b"


def test_browsecomp_key_is_the_sha256_digest_repeated() -> None:
    assert sha256_key_stream("canary-1", 40) == bytes.fromhex(DIGEST) + bytes.fromhex(DIGEST)[:8]


def test_browsecomp_known_vectors() -> None:
    assert decrypt_browsecomp("3Lrn0eg=", "canary-1") == "Paris"
    # 40 bytes: the key wraps around after the digest's 32.
    wrapped = "9KPtwONPqA7s7/7L8GCxYFLzD+C4tW0NBn+r25f07TP0o+3A40+oDg=="
    assert decrypt_browsecomp(wrapped, "canary-1") == "x" * 40


def test_xbench_key_is_the_canary_itself() -> None:
    assert decrypt_xbench("V1I=", "ab") == "60"
    # Longer than the canary: it repeats ("600" -> 'W', 'R', '0'^'a' = 'Q').
    assert decrypt_xbench("V1JR", "ab") == "600"


@pytest.mark.parametrize("bad", ["not base64!", "3Lrn0eg"])
def test_not_base64_is_undecryptable(bad: str) -> None:
    with pytest.raises(UndecryptableError, match="not base64"):
        decrypt_browsecomp(bad, "canary-1")


def test_wrong_canary_giving_invalid_utf8_is_undecryptable() -> None:
    # 0xff ^ 0x00... : "/w==" is b"\xff"; XOR with 'a' (0x61) gives 0x9e, not UTF-8.
    with pytest.raises(UndecryptableError, match="not UTF-8"):
        decrypt_xbench("/w==", "a")
