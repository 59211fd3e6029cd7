"""Impossible settings and hostile flow files are refused at validation, on one line.

Each case names the file, the key path and what is expected; before, these ran
(and "completed" with 0 turns) or blew up (1.4 GB for a 400-byte alias bomb,
``RecursionError`` for recursive anchors, deep nesting and long sub-agent chains).
"""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from mirograph.agents.fields import TIB_MB
from mirograph.flows.loader import MAX_FLOW_BYTES, FlowError, load_flow, validate_flow
from mirograph.graphs.config import MAX_SUB_AGENT_DEPTH


def _flow(model: dict | None = None, agent: dict | None = None, **top: object) -> dict:
    return {
        "name": "limits",
        "models": {"m": {"base_url": "http://127.0.0.1:9/v1", **(model or {})}},
        "agents": {"main": {"model": "m", **(agent or {})}},
        "entry": "main",
        **top,
    }


def _refused(spec: dict) -> str:
    with pytest.raises(FlowError) as info:
        validate_flow(spec, source="f.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("f.yaml: ")
    return message


def _refused_text(tmp_path: Path, text: str) -> str:
    """The one-line refusal of a flow file holding ``text``."""
    path = tmp_path / "flow.yaml"
    path.write_text(text, encoding="utf-8")
    return _refused_file(path)


def _refused_file(path: Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(FlowError) as info:
        load_flow(str(path), overrides)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


# -- impossible settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "where", "expected"),
    [
        ({"temperature": -5}, "models.m.temperature", "greater than or equal to 0"),
        ({"temperature": 1e9}, "models.m.temperature", "less than or equal to 2"),
        ({"top_p": 0}, "models.m.top_p", "greater than 0"),
        ({"top_p": 1.5}, "models.m.top_p", "less than or equal to 1"),
        ({"repetition_penalty": 0}, "models.m.repetition_penalty", "greater than 0"),
        ({"repetition_penalty": -1.0}, "models.m.repetition_penalty", "greater than 0"),
        ({"temperature": float("nan")}, "models.m.temperature", "temperature"),
        ({"timeout_s": 0}, "models.m.timeout_s", "greater than 0"),
        ({"timeout_s": -1}, "models.m.timeout_s", "greater than 0"),
        ({"max_retries": -1}, "models.m.max_retries", "greater than or equal to 0"),
        ({"retry_base_s": 1e6}, "models.m.retry_base_s", "less than or equal to 60"),
        ({"max_tokens": 0}, "models.m.max_tokens", "greater than 0"),
        ({"max_tokens": True}, "models.m.max_tokens", "valid integer"),
        ({"streaming": 1}, "models.m.streaming", "valid boolean"),
        ({"streaming": "yes"}, "models.m.streaming", "valid boolean"),
        ({"temperature": True}, "models.m.temperature", "valid number"),
        ({"api_key_env": "not a name"}, "models.m.api_key_env", "pattern"),
    ],
)
def test_impossible_model_settings(model: dict, where: str, expected: str) -> None:
    message = _refused(_flow(model=model))
    assert f"{where}:" in message and expected in message


@pytest.mark.parametrize(
    ("max_tokens", "context_tokens"), [(16384, 16384), (20000, 8000), (8000, 8500)]
)
def test_max_tokens_must_leave_room_for_a_prompt(max_tokens: int, context_tokens: int) -> None:
    spec = _flow(model={"max_tokens": max_tokens, "context_tokens": context_tokens})
    message = _refused(spec)
    assert "models.m:" in message and "max_tokens" in message and "for the prompt" in message


@pytest.mark.parametrize(
    ("agent", "where", "expected"),
    [
        ({"max_turns": True}, "agents.main.max_turns", "valid integer"),
        ({"max_turns": 0}, "agents.main.max_turns", "greater than 0"),
        ({"max_turns": 10**9}, "agents.main.max_turns", "less than or equal to 10000"),
        ({"max_turns": 2.5}, "agents.main.max_turns", "valid integer"),
        ({"keep_tool_results": -2}, "agents.main.keep_tool_results", "greater than or equal"),
        ({"retention_block": 1}, "agents.main.retention_block", "greater than or equal to 2"),
        ({"max_rollbacks": -1}, "agents.main.max_rollbacks", "greater than or equal to 0"),
        ({"max_length_retries": 64}, "agents.main.max_length_retries", "less than or equal"),
        ({"max_duplicate_rollbacks": -3}, "agents.main.max_duplicate_rollbacks", "greater"),
        ({"tool_timeout_s": 0}, "agents.main.tool_timeout_s", "greater than 0"),
        ({"tool_timeout_s": -5}, "agents.main.tool_timeout_s", "greater than 0"),
        ({"max_result_chars": 0}, "agents.main.max_result_chars", "greater than or equal"),
    ],
)
def test_impossible_agent_settings(agent: dict, where: str, expected: str) -> None:
    message = _refused(_flow(agent=agent))
    assert f"{where}:" in message and expected in message


@pytest.mark.parametrize(
    ("top", "where"),
    [
        ({"max_parallel": 0}, "max_parallel"),
        ({"max_parallel": False}, "max_parallel"),
        ({"max_tokens_total": -1}, "max_tokens_total"),
        ({"max_wall_seconds": 0}, "max_wall_seconds"),
        ({"max_wall_seconds": float("inf")}, "max_wall_seconds"),
    ],
)
def test_impossible_run_budgets(top: dict, where: str) -> None:
    assert f"{where}:" in _refused(_flow(**top))


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"memory_mb": 10**9}, "memory_mb"),
        ({"memory_mb": 2 * 1024 * 1024}, "memory_mb"),  # 2 TiB
        ({"memory_mb": True}, "memory_mb"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"timeout_s": -1}, "timeout_s"),
        ({"cpu_s": 0}, "cpu_s"),
        ({"max_file_mb": 10**9}, "max_file_mb"),
        ({"max_processes": 10**7}, "max_processes"),
        ({"network": "yes"}, "network"),
        ({"network": 1}, "network"),
    ],
)
def test_impossible_python_sandbox_options(options: dict, key: str) -> None:
    message = _refused(_flow(agent={"tools": [{"python": options}]}))
    assert f"agents.main.tools[0]: python.{key}:" in message


def test_numbers_from_variables_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """``${VAR}`` expands to text: a number or boolean written so is taken as one."""
    monkeypatch.setenv("MG_TURNS", "7")
    monkeypatch.setenv("MG_STREAM", "true")
    spec = _flow(model={"streaming": "${MG_STREAM}"}, agent={"max_turns": "${MG_TURNS}"})
    flow = validate_flow(spec)
    assert flow.agents["main"].max_turns == 7 and flow.models["m"].streaming is True
    assert flow.model_dump(mode="json")["agents"]["main"]["max_turns"] == "${MG_TURNS}"


def test_set_cannot_sneak_in_a_boolean_count() -> None:
    message = _refused_file_shipped(("agents.main.max_turns=true",))
    assert "agents.main.max_turns:" in message and "valid integer" in message


def _refused_file_shipped(overrides: tuple[str, ...]) -> str:
    with pytest.raises(FlowError) as info:
        load_flow("single-agent", overrides)
    assert "\n" not in str(info.value)
    return str(info.value)


# -- bounded flow files ------------------------------------------------------------------

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
name: *i
"""


FLOW_STYLE_BOMB = (
    "[&a [x,x,x,x,x,x,x,x,x], "
    + ", ".join(
        f"&{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "]"
)


def test_alias_bomb_is_refused_fast_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB, encoding="utf-8")
    assert path.stat().st_size < 600
    tracemalloc.start()
    started = time.perf_counter()
    try:
        message = _refused_file(path)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "expands to more than" in message and "line " in message
    assert elapsed < 1.0, f"refusing the bomb took {elapsed:.2f} s"
    assert peak < 20 * 2**20, f"refusing the bomb peaked at {peak / 2**20:.1f} MiB"


def test_merge_key_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 {k: v, j: w}"]
    lines += [
        f"a{i}: &a{i} {{<<: [*a{i - 1}], x{i}: [*a{i - 1}, *a{i - 1}]}}" for i in range(1, 40)
    ]
    assert "expands to more than" in _refused_text(tmp_path, "\n".join(lines) + "\n")


@pytest.mark.parametrize("text", ["name: &a [*a]\n", "x: &a {k: *a}\nname: n\n"])
def test_recursive_anchor_is_refused(tmp_path: Path, text: str) -> None:
    assert "recursive anchor" in _refused_text(tmp_path, text)


@pytest.mark.parametrize(
    "text",
    [
        "name: " + "[" * 3000 + "]" * 3000 + "\n",
        "".join(f"{'  ' * i}k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
    ],
    ids=["flow-style", "block-style"],
)
def test_deep_nesting_is_refused(tmp_path: Path, text: str) -> None:
    assert "nested deeper than" in _refused_text(tmp_path, text)


def test_oversized_file_is_refused(tmp_path: Path) -> None:
    assert "at most" in _refused_text(
        tmp_path, "name: x\n" + "# padding\n" * (MAX_FLOW_BYTES // 10 + 1)
    )


def test_aliases_within_bounds_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(
        "models: {m: {base_url: 'http://127.0.0.1:9/v1'}}\n"
        "agents:\n  main: &agent {model: m, max_turns: 3}\n  other: {<<: *agent, max_turns: 4}\n"
        "name: ok\nentry: main\n",
        encoding="utf-8",
    )
    flow = load_flow(str(path))
    assert flow.agents["other"].max_turns == 4 and flow.agents["other"].model == "m"


def _chain(length: int) -> dict:
    agents = {f"a{i}": {"model": "m", "sub_agents": [f"a{i + 1}"]} for i in range(length - 1)}
    agents[f"a{length - 1}"] = {"model": "m"}
    return {"name": "chain", "models": {"m": {}}, "agents": agents, "entry": "a0"}


def test_three_thousand_deep_sub_agent_chain_is_one_line() -> None:
    message = _refused(_chain(3000))
    assert "sub_agents:" in message and "3000 agents deep" in message
    assert f"at most {MAX_SUB_AGENT_DEPTH}" in message


def test_three_thousand_deep_cycle_is_found_without_recursion() -> None:
    spec = _chain(3000)
    spec["agents"]["a2999"]["sub_agents"] = ["a0"]
    assert "cycle" in _refused(spec)


def test_chain_at_the_limit_is_accepted() -> None:
    flow = validate_flow(_chain(MAX_SUB_AGENT_DEPTH))
    assert len(flow.agents) == MAX_SUB_AGENT_DEPTH
    assert f"{MAX_SUB_AGENT_DEPTH + 1} agents deep" in _refused(_chain(MAX_SUB_AGENT_DEPTH + 1))


# -- bad input is one line -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"name: x\x00\nentry: y\n", "NUL byte"),
        (b"name: \xff\xfe\x00bad", "NUL byte"),
        (b"name: caf\xe9\n", "not UTF-8"),
        (bytes(range(256)) * 4, "NUL byte"),
    ],
)
def test_binary_flow_file_is_one_line(tmp_path: Path, data: bytes, expected: str) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(data)
    assert expected in _refused_file(path)


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("agents.main.tools=[files", "--set agents.main.tools:"),
        ("name={a: [}", "--set name:"),
        ("agents.main.max_turnz=5", "unknown key 'max_turnz'"),
        ("models.thinker.temprature=0.5", "unknown key 'temprature'"),
        ("colour=red", "unknown key 'colour'"),
        ("agents..max_turns=5", "empty key"),
        ("agents.main.max_turns", "KEY=VALUE"),
        ("name=" + "[" * 500 + "]" * 500, "nested deeper than"),
        ("name=" + FLOW_STYLE_BOMB, "expands to more than"),
    ],
)
def test_bad_set_is_one_line(item: str, expected: str) -> None:
    assert expected in _refused_file_shipped((item,))


def test_memory_above_this_machine_is_a_warning_not_a_limit() -> None:
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    big = min(ram_mb * 2, TIB_MB)
    flow = validate_flow(_flow(agent={"tools": [{"python": {"memory_mb": big}}]}))
    assert any(f"memory_mb {big} is above" in w for w in flow.environment_warnings())
    small = validate_flow(_flow(agent={"tools": [{"python": {"memory_mb": 512}}]}))
    assert not any("memory_mb" in w for w in small.environment_warnings())


@pytest.mark.parametrize(
    ("tool", "options", "key"),
    [
        ("reasoning", {"model": "m", "max_tokens": True}, "max_tokens"),
        ("reasoning", {"model": "m", "max_tokens": 10**12}, "max_tokens"),
        ("mcp", {"name": "srv", "command": ["srv"], "timeout_s": 10**9}, "timeout_s"),
        ("mcp", {"name": "srv", "command": ["srv"], "timeout_s": True}, "timeout_s"),
    ],
)
def test_impossible_reasoning_and_mcp_options(tool: str, options: dict, key: str) -> None:
    message = _refused(_flow(agent={"tools": [{tool: options}]}))
    assert f"agents.main.tools[0]: {tool}.{key}:" in message


def test_one_long_string_aliased_many_times_is_refused(tmp_path: Path) -> None:
    """Few values, but megabytes of text once each alias is expanded."""
    path = tmp_path / "bytes.yaml"
    body = "x" * 100_000
    uses = ", ".join(["*s"] * 100)
    path.write_text(f"name: f\nlong: &s {body}\nmany: [{uses}]\n", encoding="utf-8")
    message = _refused_file(path)
    assert "characters (aliases counted at each use)" in message


@pytest.mark.parametrize(
    "text",
    [
        "name: f\ndescription: 2001-13-45\n",  # a timestamp YAML cannot build
        "name: f\nmax_turns: " + "9" * 5000 + "\n",
    ],
)
def test_a_value_yaml_cannot_build_is_one_line(tmp_path: Path, text: str) -> None:
    assert "a value cannot be read" in _refused_text(tmp_path, text)


def test_a_bad_value_in_set_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(_flow()), encoding="utf-8")
    with pytest.raises(FlowError) as info:
        load_flow(str(path), ("description=2001-13-45",))
    assert str(info.value) == (
        "--set description: a value cannot be read (month must be in 1..12); quote it or fix it"
    )


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        "name: f\nmodels: {m: {base_url: 'http://127.0.0.1:9/v1'}}\n"
        "agents:\n  main: {model: m, max_turns: 5}\n  main: {model: m, max_turns: 7}\n"
        "entry: main\n",
        encoding="utf-8",
    )
    assert "line 5: key 'main' is given twice; keep one" in _refused_file(path)


@pytest.mark.parametrize(
    ("tool", "options", "key"),
    [
        ("scrape", {"max_chars": True}, "max_chars"),
        ("scrape", {"extraction_chars": 10**30}, "extraction_chars"),
        ("local", {"path": ".", "top_k": True}, "top_k"),
        ("local", {"path": ".", "max_chars": 2.0}, "max_chars"),
        ("local", {"path": ".", "index_timeout_s": float("inf")}, "index_timeout_s"),
        ("local", {"path": ".", "index_timeout_s": True}, "index_timeout_s"),
    ],
)
def test_impossible_scrape_and_local_options(tool: str, options: dict, key: str) -> None:
    """An infinite time limit removes the hard limit and is stored as null (unresumable)."""
    message = _refused(_flow(agent={"tools": [{tool: options}]}))
    assert f"agents.main.tools[0]: {tool}.{key}:" in message


def test_a_reasoning_budget_must_leave_its_model_room_for_a_prompt() -> None:
    tools = [{"reasoning": {"model": "m", "max_tokens": 100_000}}]
    model = {"context_tokens": 8192, "max_tokens": 1024}
    message = _refused(_flow(model=model, agent={"tools": tools}))
    assert "agents.main.tools[0].reasoning.max_tokens: 100000 leaves -91808" in message
