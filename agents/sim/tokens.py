"""Deterministic token counts and a simulated prefix cache for the simulated model.

Real tokenizers are heavy and model-specific; the engine only needs counts
that are stable, roughly proportional to text length, and identical between
``usage`` and ``/tokenize`` (so context decisions can be tested exactly). The
prefix cache mimics vLLM's automatic prefix caching closely enough that
``cached_tokens`` behaves like the real thing; it never changes a reply.
"""

from __future__ import annotations

import json
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "PrefixCache",
    "count_message_tokens",
    "count_tokens",
    "encode",
    "encode_messages",
    "encode_request",
]

VOCAB_SIZE = 151_643
# Special ids sit above the text vocabulary so that they never collide with it.
_IM_START = VOCAB_SIZE
_IM_END = VOCAB_SIZE + 1
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def encode(text: str) -> list[int]:
    """Word-and-punctuation tokens, each mapped to a stable id."""
    cached = _ENCODED.get(text)
    if cached is None:
        cached = [zlib.crc32(piece.encode()) % VOCAB_SIZE for piece in _TOKEN_RE.findall(text)]
        if len(text) >= _MEMO_MIN_CHARS:
            if len(_ENCODED) >= _MEMO_MAX:
                _ENCODED.pop(next(iter(_ENCODED)))
            _ENCODED[text] = cached
    return cached


# A long conversation re-sends the same messages every turn: encode each once.
# (Memoisation only: a reply still depends on nothing but its request.)
_ENCODED: dict[str, list[int]] = {}
_MEMO_MIN_CHARS = 64
_MEMO_MAX = 20_000


def count_tokens(text: str) -> int:
    """Number of tokens ``encode`` would produce, without building the list."""
    return len(_TOKEN_RE.findall(text))


def encode_messages(messages: Iterable[Mapping[str, Any]]) -> list[int]:
    """Token ids of a chat prompt in a ChatML-like template, with the reply primed.

    Each message costs ``<start> role ... <end>``; the prompt ends with
    ``<start> assistant`` as a chat template with a generation prompt does.
    """
    ids: list[int] = []
    for message in messages:
        ids.extend(_encode_message(message))
    ids.append(_IM_START)
    ids.extend(encode("assistant"))
    return ids


def _encode_message(message: Mapping[str, Any]) -> list[int]:
    """One message's tokens; plain messages are memoised (they recur every turn)."""
    content = message.get("content")
    plain = isinstance(content, str)
    key = (str(message.get("role", "")), content) if plain and len(message) == 2 else None
    if key is not None and (cached := _MESSAGES.get(key)) is not None:
        return cached
    ids = _encode_message_uncached(message)
    if key is not None:
        if len(_MESSAGES) >= _MEMO_MAX:
            _MESSAGES.pop(next(iter(_MESSAGES)))
        _MESSAGES[key] = ids
    return ids


_MESSAGES: dict[tuple[str, str], list[int]] = {}


def _encode_message_uncached(message: Mapping[str, Any]) -> list[int]:
    """``<start> role ... <end>``: reasoning, content, then any native tool calls."""
    ids = [_IM_START, *encode(str(message.get("role", "")))]
    reasoning = message.get("reasoning", message.get("reasoning_content"))
    if isinstance(reasoning, str):
        ids.extend(encode(reasoning))
    ids.extend(encode(_content_text(message.get("content"))))
    for call in message.get("tool_calls") or ():
        ids.extend(encode(json.dumps(call, sort_keys=True, ensure_ascii=False)))
    ids.append(_IM_END)
    return ids


def count_message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """Prompt tokens for these messages, as ``usage.prompt_tokens`` reports them."""
    return len(encode_messages(messages))


def encode_request(body: Mapping[str, Any]) -> list[int]:
    """Prompt token ids of a chat or tokenize request: tools, then messages or prompt."""
    ids: list[int] = []
    tools = body.get("tools")
    if tools:
        ids.extend(encode(json.dumps(tools, sort_keys=True, ensure_ascii=False)))
    if "messages" in body:
        ids.extend(encode_messages(body.get("messages") or []))
    else:
        ids.extend(encode(str(body.get("prompt", ""))))
    return ids


def _content_text(content: Any) -> str:
    """Text of a message's content, whether a string or a list of parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                texts.append(json.dumps(part, sort_keys=True, ensure_ascii=False, default=str))
        return "\n".join(texts)
    return str(content)


class PrefixCache:
    """Block-aligned prefix cache with chained block hashes and LRU eviction.

    Like vLLM's automatic prefix caching, a block's hash covers its tokens and
    the hash of the block before it, so a hit on block ``i`` implies the whole
    prefix matched. At least one prompt token is always recomputed, so a fully
    cached, block-aligned prompt reports one block less.
    """

    def __init__(self, block_tokens: int = 16, max_blocks: int = 200_000) -> None:
        if block_tokens < 1 or max_blocks < 1:
            raise ValueError("block_tokens and max_blocks must be positive")
        self.block_tokens = block_tokens
        self.max_blocks = max_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()
        # The previous prompt and its block hashes: a conversation's next
        # request shares most of its head, whose hashes need no recomputing.
        self._last_tokens: list[int] = []
        self._last_hashes: list[int] = []

    def __len__(self) -> int:
        return len(self._blocks)

    def lookup_and_insert(self, tokens: Sequence[int]) -> int:
        """Return how many leading tokens were cached, then cache this prompt's blocks."""
        size = self.block_tokens
        tokens = list(tokens)
        with self._lock:
            hashes = self._reused_hashes(tokens)
            parent = hashes[-1] if hashes else 0
            for start in range(len(hashes) * size, len(tokens) - size + 1, size):
                parent = hash((parent, *tokens[start : start + size]))
                hashes.append(parent)
            self._last_tokens, self._last_hashes = tokens, list(hashes)
            lookable = max(len(tokens) - 1, 0) // size
            hits = 0
            for block_hash in hashes[:lookable]:
                if block_hash not in self._blocks:
                    break
                hits += 1
            # Newest-first, so the shared head of a prompt is evicted last (as vLLM does).
            for block_hash in reversed(hashes):
                self._blocks[block_hash] = None
                self._blocks.move_to_end(block_hash)
            while len(self._blocks) > self.max_blocks:
                self._blocks.popitem(last=False)
        return hits * size

    def _reused_hashes(self, tokens: list[int]) -> list[int]:
        """Hashes of the leading full blocks this prompt shares with the previous one."""
        size, last = self.block_tokens, self._last_tokens
        limit = min(len(tokens), len(last))
        chunk = size * 64
        same = 0  # tokens known equal: advance a chunk, then a block, at a time
        while same + chunk <= limit and tokens[same : same + chunk] == last[same : same + chunk]:
            same += chunk
        while same + size <= limit and tokens[same : same + size] == last[same : same + size]:
            same += size
        return self._last_hashes[: same // size]
