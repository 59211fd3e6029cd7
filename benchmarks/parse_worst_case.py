"""The cost of parsing a reply's tool-call arguments, worst case and ordinary.

The parse runs on the event loop, so a slow one stalls the whole run. Before,
broken arguments up to 32k characters went to json_repair, quadratic or worse
on some flat garbage; now the common slips are mended in one linear pass and
json_repair sees at most MAX_REPAIR_CHARS characters per reply. "before" is
the old path on the arguments (strict JSON, else json_repair; only up to
--before-max characters: it takes minutes past that), "after" is
``parse_reply`` on the whole call. CPU time of this thread, best of
--repeats.

    python -m benchmarks.parse_worst_case [--before-max 4096] [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable

import json_repair

from mirograph.agents.mirothinker.parsing import MAX_REPAIR_CHARS, parse_reply

HEAD = "<use_mcp_tool><server_name>s</server_name><tool_name>t</tool_name><arguments>"
TAIL = "</arguments></use_mcp_tool>"
SIZES = [512, 1024, 2048, 4096, 8192, 16384, 32768]

#: Flat garbage json_repair is slow on: a prefix and a unit repeated.
GARBAGE = {
    '"{]\\': (" ", '"{]\\'),
    "]null{": ("\n:", "]null{"),
    "}{true": (",,", "}{true"),
    '["a"': ('"', '["a"'),
    '"b in a list': ('{"a":[', '"b'),
    '\\"]{{': ("*{", '\\"]{{'),
    "{'": ('"', "{'"),
}
CODE_LINE = "if re.match(r\"\\d+\\s*\", row['id']):\n\ttotal += 1  # 北京\n"


def _code(n: int, tail: str) -> str:
    """A code_block of about ``n`` characters as a model writes it: raw newlines and
    tabs, regex backslashes left single, and ``tail`` after the code."""
    body = (CODE_LINE * (n // len(CODE_LINE) + 1))[:n].replace('"', '\\"')
    return '{"code_block": "' + body + tail


#: Arguments a model really writes, at any length.
ORDINARY: dict[str, Callable[[int], str]] = {
    "code, valid JSON": lambda n: _code(n, "").encode("unicode_escape").decode() + '"}',
    "code, raw newlines and \\d": lambda n: _code(n, '"}'),
    'code, cut off (no "})': lambda n: _code(n, ""),
    "code, trailing comma": lambda n: _code(n, '", "timeout": 30,}'),
    "single quotes, True/None": lambda n: "{'q': '" + "w" * n + "', 'a': True, 'b': None}",
}


def cpu(fn: Callable[[str], object], text: str, repeats: int) -> float:
    """Best CPU time of ``fn(text)`` over ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        started = time.thread_time()
        fn(text)
        best = min(best, time.thread_time() - started)
    return best


def _before(raw: str) -> None:
    """The old path: strict JSON, else json_repair (whose errors do not matter here)."""
    try:
        json.loads(raw)
    except ValueError:
        with contextlib.suppress(Exception):
            json_repair.loads(raw)


def row(name: str, make: Callable[[int], str], before_max: int, repeats: int) -> None:
    before, after = [], []
    for n in SIZES:
        raw = make(n)
        reply = HEAD + raw + TAIL
        after.append(f"{cpu(parse_reply, reply, repeats):8.4f}")
        if n <= before_max:
            before.append(f"{cpu(_before, raw, 1 if n > 2048 else repeats):8.3f}")
        else:
            before.append(f"{'-':>8}")
    print(f"{name:28} before {' '.join(before)}")
    print(f"{'':28} after  {' '.join(after)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-max", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"seconds of CPU per call, by arguments' length; MAX_REPAIR_CHARS = {MAX_REPAIR_CHARS}")
    print(f"{'arguments':28} {'':6} {' '.join(f'{n:>8}' for n in SIZES)}")
    for name, (prefix, unit) in GARBAGE.items():
        row(name, lambda n, p=prefix, u=unit: p + u * ((n - len(p)) // len(u)), args.before_max, 3)
    for name, make in ORDINARY.items():
        row(name, make, args.before_max, args.repeats)
    print("\nwhole replies (after):")
    for name, (prefix, unit) in GARBAGE.items():
        call = HEAD + prefix + unit * ((MAX_REPAIR_CHARS - len(prefix)) // len(unit)) + TAIL
        reply = "x" + call * 10  # ten calls, each within the cap
        took = cpu(parse_reply, reply, 1)
        print(f"  10 calls of {MAX_REPAIR_CHARS} chars of {name!r:14} {took:.3f} s")
    big = "x" + (HEAD + _code(100_000, "") + TAIL) * 10
    print(f"  10 cut-off code calls, {len(big):,} chars  {cpu(parse_reply, big, 1):.3f} s")


if __name__ == "__main__":
    main()
