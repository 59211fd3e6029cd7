"""MiroThinker versions as shipped presets, their aliases, and deep-research's ``version``."""

from __future__ import annotations

import pytest
from support.testkit import Cli, free_port, show

from mirograph.flows.loader import FlowError, load_flow
from mirograph.graphs.config import FlowConfig
from mirograph.state.store import open_registry

NOTES = "mirograph.agents.sim.policies:notes"

#: The protocol page's "Versions": each release's turn budget; keep 5 for all.
PRESETS = [("mirothinker-v1.0", "v1.0", 600), ("mirothinker-v1.5", "v1.5", 400)]
PRESETS += [("mirothinker-v1.7", "v1.7", 300)]
#: ... and its restart rule: 5 restarts; 1.7 restarts without the failure summary.
RESTARTS = {"v1.0": (5, True), "v1.5": (5, True), "v1.7": (5, False)}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MIROGRAPH_BASE_URL", "MIROGRAPH_MODEL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("name", "version", "turns"), PRESETS)
def test_each_preset_has_its_budget_and_the_published_sampling(
    name: str, version: str, turns: int
) -> None:
    flow = load_flow(name)
    assert (flow.name, flow.version, flow.entry) == (name, version, "main")
    main = flow.agents["main"]
    assert (main.max_turns, main.keep_tool_results, main.tools) == (turns, 5, ["files"])
    assert (main.max_restarts, main.restart_summary) == RESTARTS[version]
    thinker = flow.models[main.model]
    assert (thinker.protocol, thinker.temperature, thinker.top_p) == ("mirothinker", 1.0, 0.95)
    assert (thinker.repetition_penalty, thinker.max_tokens) == (1.05, 16384)
    assert thinker.context_tokens == 262144


@pytest.mark.parametrize(
    ("alias", "target"),
    [("single-agent", "mirothinker-v1.0"), ("mirothinker-1.7", "mirothinker-v1.7")],
)
def test_an_alias_loads_its_preset_under_its_own_name(alias: str, target: str) -> None:
    flow = load_flow(alias)
    assert flow.name == alias  # what a run of it stores and shows, as single-agent always did
    assert flow.model_copy(update={"name": target}) == load_flow(target)


def test_the_default_flow_is_still_single_agent() -> None:
    assert load_flow().name == "single-agent"
    assert load_flow().agents["main"].max_turns == 600


def test_a_flow_s_own_max_turns_wins_over_its_version() -> None:
    flow = load_flow("mirothinker-v1.7", ["agents.main.max_turns=2"])
    assert (flow.version, flow.agents["main"].max_turns) == ("v1.7", 2)


def test_a_flow_s_own_restart_rule_wins_over_its_version() -> None:
    flow = load_flow(
        "mirothinker-v1.7", ["agents.main.max_restarts=0", "agents.main.restart_summary=true"]
    )
    assert (flow.agents["main"].max_restarts, flow.agents["main"].restart_summary) == (0, True)
    assert load_flow("mirothinker-v1.5", ["version=v1.7"]).agents["main"].restart_summary is False


def test_a_stored_flow_takes_the_version_it_is_resumed_with() -> None:
    # What a version sets is derived, not stored: a resume with --set version=...
    # (which re-validates the stored flow) gets that version's budget and rule.
    stored = load_flow("mirothinker-v1.5").model_dump(mode="json")
    assert "max_turns" not in stored["agents"]["main"]
    main = FlowConfig.model_validate({**stored, "version": "v1.7"}).agents["main"]
    assert (main.max_turns, main.max_restarts, main.restart_summary) == (300, 5, False)


def test_a_version_gives_restarts_to_a_main_entry_agent_only() -> None:
    spec = {
        "name": "browse",
        "version": "v1.5",
        "models": {"m": {}},
        "agents": {"browsing": {"model": "m"}},
        "entry": "browsing",
    }
    entry = FlowConfig.model_validate(spec).agents["browsing"]
    assert (entry.max_turns, entry.max_restarts) == (400, 0)
    spec["agents"]["browsing"]["max_restarts"] = 2
    with pytest.raises(ValueError, match=r"only the entry agent \('browsing'\) with role main"):
        FlowConfig.model_validate(spec)


def test_only_the_entry_agent_restarts() -> None:
    spec = {
        "name": "team",
        "models": {"m": {}},
        "agents": {
            "planner": {"model": "m", "sub_agents": ["browsing"]},
            "browsing": {"model": "m", "max_restarts": 2},
        },
        "entry": "planner",
    }
    with pytest.raises(ValueError, match=r"agents\.browsing\.max_restarts: only the entry agent"):
        FlowConfig.model_validate(spec)


@pytest.mark.parametrize(
    ("setting", "version", "turns"),
    [(None, "v1.0", 600), ("v1.5", "v1.5", 400), ("v1.7", "v1.7", 300), ("1.7", "v1.7", 300)],
)
def test_deep_research_version_sets_the_planner_s_budget(
    setting: str | None, version: str, turns: int
) -> None:
    overrides = [f"version={setting}"] if setting else []
    flow = load_flow("deep-research", overrides, check_env=False)
    assert (flow.version, flow.agents["planner"].max_turns) == (version, turns)
    assert flow.agents["browsing"].max_turns == 100  # the sub-agents keep their own


def test_a_stored_single_agent_run_from_before_the_presets_still_reads() -> None:
    """A run stored before ``version`` existed: same name, same budget, no version."""
    spec = load_flow("single-agent").model_dump(mode="json")
    del spec["version"]
    flow = FlowConfig.model_validate(spec)
    assert (flow.name, flow.version, flow.agents["main"].max_turns) == ("single-agent", None, 600)


def test_run_with_a_preset_against_the_sim_server(cli: Cli, sim_model) -> None:
    base_url = sim_model(NOTES)
    result = cli(
        "run", "Plan it.", "--flow", "mirothinker-v1.5", "--set", "agents.main.max_turns=3",
        "--id", "v15", "--store", cli.store, env={"MIROGRAPH_BASE_URL": base_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = show(cli, "v15")
    assert (report["flow"], report["status"], report["stop_reason"]) == (
        "mirothinker-v1.5",
        "completed",
        "max_turns",
    )
    # Each attempt's turns ran out (no answer asked while it may restart): 5 restarts,
    # 6 attempts of 3 turns; the last is asked for its answer.
    assert [row["turns"] for row in report["attempts"]] == [3] * 6
    assert (report["agents"]["main"]["turns"], report["answer"]) == (18, "plan has 2 steps")


async def test_an_old_single_agent_run_resumes_under_its_name(cli: Cli, sim_model) -> None:
    """Paused before its first reply (no server), stored as a run from before the
    presets (no ``version``), then resumed against the sim server."""
    dead = {"MIROGRAPH_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    paused = cli(
        "run", "Plan it.", "--flow", "single-agent", "--set", "models.thinker.max_retries=0",
        "--id", "old", "--store", cli.store, env=dead,
    )  # fmt: skip
    assert show(cli, "old")["status"] == "paused", paused.stderr
    async with open_registry(cli.store) as registry:
        spec = registry.get("old").flow_spec
        del spec["version"]
        registry.update("old", flow_spec=spec)

    resumed = cli(
        "resume", "old", "--store", cli.store, env={"MIROGRAPH_BASE_URL": sim_model(NOTES)}
    )
    assert resumed.returncode == 0, resumed.stderr
    report = show(cli, "old")
    assert (report["flow"], report["status"], report["answer"]) == (
        "single-agent",
        "completed",
        "plan has 2 steps",
    )


@pytest.mark.parametrize("flow", ["deep-research", "mirothinker-v1.5"])
def test_an_unknown_version_is_one_line_and_exit_2(cli: Cli, flow: str) -> None:
    result = cli("run", "q", "--flow", flow, "--set", "version=v2.0", "--store", cli.store)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "version: unknown MiroThinker version 'v2.0'; use one of: v1.0, v1.5, v1.7" in line


def test_an_unknown_version_in_python_is_a_flow_error() -> None:
    with pytest.raises(FlowError, match="unknown MiroThinker version True"):
        load_flow("mirothinker-v1.0", ["version=true"])
