"""Loading and validating flow files."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mirograph.flows.loader import (
    SHIPPED_DIR,
    FlowError,
    apply_overrides,
    expand_env,
    load_flow,
    shipped_flows,
)

SHIPPED = SHIPPED_DIR / "mirothinker-v1.0.yaml"

GOOD = """\
name: test-flow
models:
  thinker:
    protocol: mirothinker
    base_url: http://localhost:8000/v1
agents:
  main:
    model: thinker
    max_turns: 10
    keep_tool_results: 5
    tools: [files]
    sub_agents: [browsing]
  browsing:
    model: thinker
    max_turns: 5
entry: main
"""


def _write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _error(ref: str | Path, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(FlowError) as info:
        load_flow(str(ref), overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MIROGRAPH_BASE_URL", "MIROGRAPH_MODEL", "MG_TEST_VAR"):
        monkeypatch.delenv(name, raising=False)


# -- shipped flow ----------------------------------------------------------------


def test_shipped_flow_by_name() -> None:
    flow = load_flow("single-agent")
    assert flow.name == "single-agent"
    assert flow.entry == "main"
    main = flow.agents["main"]
    assert main.max_turns == 600
    assert main.keep_tool_results == 5
    assert main.tools == ["files"]
    assert main.model == "thinker"
    thinker = flow.models["thinker"]
    assert thinker.protocol == "mirothinker"
    assert thinker.base_url == "http://localhost:8000/v1"
    assert thinker.model == "mirothinker"
    assert thinker.context_tokens == 262144
    assert thinker.repetition_penalty == 1.05


def test_default_flow_is_single_agent() -> None:
    assert load_flow().name == "single-agent"
    assert load_flow(None) == load_flow("single-agent")


def test_shipped_flow_by_path() -> None:
    assert load_flow(str(SHIPPED)) == load_flow("mirothinker-v1.0")


def test_shipped_flows_listed_with_their_aliases() -> None:
    assert {"single-agent", "mirothinker-v1.0", "mirothinker-1.7"} <= set(shipped_flows())


def test_set_override_gives_typed_value() -> None:
    flow = load_flow("single-agent", ["agents.main.max_turns=50"])
    assert flow.agents["main"].max_turns == 50
    assert isinstance(flow.agents["main"].max_turns, int)


def test_set_overrides_several_keys() -> None:
    flow = load_flow(
        "single-agent",
        ["agents.main.keep_tool_results=-1", "models.thinker.streaming=true", "name=renamed"],
    )
    assert flow.agents["main"].keep_tool_results == -1
    assert flow.models["thinker"].streaming is True
    assert flow.name == "renamed"


def test_override_does_not_change_the_next_load() -> None:
    load_flow("single-agent", ["agents.main.max_turns=50"])
    assert load_flow("single-agent").agents["main"].max_turns == 600


def test_env_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_flow("single-agent").models["thinker"].base_url == "http://localhost:8000/v1"
    monkeypatch.setenv("MIROGRAPH_BASE_URL", "http://gpu-box:9000/v1")
    monkeypatch.setenv("MIROGRAPH_MODEL", "mt-72b")
    flow = load_flow("single-agent")
    assert flow.models["thinker"].base_url == "http://gpu-box:9000/v1"
    assert flow.models["thinker"].model == "mt-72b"


# -- expand_env / apply_overrides -----------------------------------------------------


def test_expand_env_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MG_TEST_VAR", "set")
    data = {
        "a": "${MG_TEST_VAR}",
        "b": ["x-${MG_TEST_VAR:-d}-y", 3],
        "c": {"d": "${MG_NOPE:-dflt}"},
    }
    assert expand_env(data) == {"a": "set", "b": ["x-set-y", 3], "c": {"d": "dflt"}}


def test_a_default_may_name_another_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MG_OUTER_FALLBACK", "http://shared:8000/v1")
    monkeypatch.delenv("MG_INNER", raising=False)
    assert expand_env("${MG_INNER:-${MG_OUTER_FALLBACK:-http://localhost:8000/v1}}") == (
        "http://shared:8000/v1"
    )
    monkeypatch.setenv("MG_INNER", "http://own:9000/v1")
    assert expand_env("${MG_INNER:-${MG_OUTER_FALLBACK:-x}}") == "http://own:9000/v1"
    monkeypatch.delenv("MG_OUTER_FALLBACK")
    monkeypatch.delenv("MG_INNER")
    assert expand_env("${MG_INNER:-${MG_OUTER_FALLBACK:-x}}") == "x"


def test_expand_env_empty_default() -> None:
    assert expand_env("[${MG_NOPE:-}]") == "[]"


def test_expand_env_unset_without_default() -> None:
    with pytest.raises(FlowError, match="MG_NOPE is not set"):
        expand_env({"a": "${MG_NOPE}"})


def test_missing_env_var_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("http://localhost:8000/v1", "${MG_NOPE}"))
    message = _error(path)
    assert str(path) in message
    assert "MG_NOPE" in message


def test_apply_overrides_creates_missing_mappings() -> None:
    data: dict = {"agents": {}}
    apply_overrides(data, ["agents.new.max_turns=3", "agents.new.tools=[files]", "entry=new"])
    assert data == {"agents": {"new": {"max_turns": 3, "tools": ["files"]}}, "entry": "new"}


def test_apply_overrides_through_a_scalar() -> None:
    with pytest.raises(FlowError, match="'name' is not a mapping"):
        apply_overrides({"name": "x"}, ["name.sub=1"], source="f.yaml")


# -- broken flows --------------------------------------------------------------------


def test_good_flow_loads(tmp_path: Path) -> None:
    flow = load_flow(str(_write(tmp_path, GOOD)))
    assert flow.agents["main"].sub_agents == ["browsing"]


def test_unknown_key(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("max_turns: 10", "max_turn: 10"))
    message = _error(path)
    assert str(path) in message
    assert "agents.main.max_turn:" in message
    assert "unknown key" in message


def test_wrong_type(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("max_turns: 10", "max_turns: many"))
    message = _error(path)
    assert str(path) in message
    assert "agents.main.max_turns:" in message
    assert "integer" in message
    assert "'many'" in message


def test_wrong_type_from_set() -> None:
    message = _error("single-agent", ("agents.main.max_turns=many",))
    assert "agents.main.max_turns:" in message
    assert "mirothinker-v1.0.yaml" in message


def test_out_of_range_value(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("keep_tool_results: 5", "keep_tool_results: -2"))
    assert "agents.main.keep_tool_results:" in _error(path)


def test_unknown_model_reference(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("model: thinker\n    max_turns: 5", "model: ghost"))
    message = _error(path)
    assert str(path) in message
    assert "agents.browsing.model: unknown model 'ghost'" in message
    assert "thinker" in message


def test_unknown_tool(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("tools: [files]", "tools: [files, nope]"))
    message = _error(path)
    assert str(path) in message
    assert "agents.main.tools[1]:" in message
    assert "'nope'" in message


def test_undocumented_function_as_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mg_loader_tools.py").write_text("def f(x: int) -> int:\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _write(tmp_path, GOOD.replace("tools: [files]", "tools: ['mg_loader_tools:f']"))
    message = _error(path)
    assert "agents.main.tools[0]:" in message
    assert "docstring" in message


def test_unknown_sub_agent(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("sub_agents: [browsing]", "sub_agents: [coding]"))
    message = _error(path)
    assert str(path) in message
    assert "agents.main.sub_agents: unknown agent 'coding'" in message


def test_sub_agent_cycle(tmp_path: Path) -> None:
    text = """\
    name: cyclic
    models:
      m: {}
    agents:
      a: {model: m, sub_agents: [b]}
      b: {model: m, sub_agents: [a]}
    entry: a
    """
    path = _write(tmp_path, text)
    message = _error(path)
    assert str(path) in message
    assert "sub_agents" in message
    assert "cycle" in message
    assert "a -> b -> a" in message


def test_self_cycle(tmp_path: Path) -> None:
    text = """\
    name: cyclic
    models: {m: {}}
    agents:
      a: {model: m, sub_agents: [a]}
    entry: a
    """
    assert "a -> a" in _error(_write(tmp_path, text))


def test_missing_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("entry: main\n", ""))
    message = _error(path)
    assert str(path) in message
    assert "entry: required key is missing" in message


def test_entry_not_an_agent(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace("entry: main", "entry: boss"))
    message = _error(path)
    assert "entry 'boss' is not an agent" in message
    assert "browsing, main" in message


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: broken\nmodels:\n  m: {protocol: [unclosed\nentry: x\n")
    message = _error(path)
    assert str(path) in message
    assert "line " in message
    assert "YAML" in message


def test_yaml_syntax_error_line_number(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nentry: y\nagents:\n  a: b\n   c: d\n")
    assert "line 5" in _error(path)


def test_top_level_list(tmp_path: Path) -> None:
    path = _write(tmp_path, "- name: x\n- entry: y\n")
    message = _error(path)
    assert str(path) in message
    assert "expected a mapping" in message


def test_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "")
    assert "expected a mapping" in _error(path)


def test_unknown_flow_name_lists_shipped() -> None:
    message = _error("no-such-flow")
    assert "'no-such-flow'" in message
    assert "single-agent" in message


def test_missing_flow_file(tmp_path: Path) -> None:
    message = _error(tmp_path / "absent.yaml")
    assert "absent.yaml" in message
    assert "does not exist" in message


@pytest.mark.parametrize("item", ["agents.main.max_turns", "=50", "  =1"])
def test_set_without_key_value(item: str) -> None:
    message = _error("single-agent", (item,))
    assert "--set" in message
    assert "KEY=VALUE" in message


def test_several_errors_on_one_line(tmp_path: Path) -> None:
    text = GOOD.replace("max_turns: 10", "max_turns: many\n    colour: red")
    message = _error(_write(tmp_path, text))
    assert "agents.main.max_turns:" in message
    assert "agents.main.colour:" in message


def test_environment_values_are_not_expanded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MG_LITERAL", "${NOT_A_VAR}")
    assert expand_env("x=${MG_LITERAL}") == "x=${NOT_A_VAR}"
    assert expand_env("cost: $5 {a} ${") == "cost: $5 {a} ${"


def test_an_unclosed_variable_is_an_error() -> None:
    with pytest.raises(FlowError, match="unclosed"):
        expand_env("${MG_X:-abc")


# -- tool modules beside the flow file ------------------------------------------------------


def test_a_tool_module_beside_the_flow_file_needs_no_pythonpath(tmp_path: Path) -> None:
    (tmp_path / "mg_beside_loader_tools.py").write_text(
        'def ping(x: int) -> int:\n    """Echo x."""\n    return x\n'
    )
    path = _write(
        tmp_path, GOOD.replace("tools: [files]", "tools: ['mg_beside_loader_tools:ping']")
    )
    flow = load_flow(str(path))
    assert flow.flow_dir == str(tmp_path.resolve())
    # Stored with the run, so a resume in another process finds the module too.
    assert flow.model_dump(mode="json")["flow_dir"] == str(tmp_path.resolve())


def test_flow_dir_is_set_by_the_loader_only(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, GOOD + "flow_dir: /elsewhere\n"))
    assert "flow_dir: set by the loader" in message
