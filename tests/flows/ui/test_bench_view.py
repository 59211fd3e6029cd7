"""``mirograph bench`` output folders in the web view: each listed with its settings and
summary, its plots served by the folder's number and the plot's name only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from support.ui_kit import ui_client

#: The start of a PNG file, then bytes that make this one recognisable.
PNG = b"\x89PNG\r\n\x1a\n" + b"scaling plot of bench a"


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Two roots: ``bench/`` with two bench folders (one still without a summary) and a
    folder that is no bench; ``solo/``, itself a bench folder."""
    monkeypatch.setenv("MIROGRAPH_HOME", str(tmp_path / "home"))
    bench = tmp_path / "bench"
    a, b, solo = bench / "a-gaia", bench / "b-xbench", tmp_path / "solo"
    for folder, name in ((a, "gaia"), (b, "xbench"), (solo, "solo")):
        folder.mkdir(parents=True)
        (folder / "bench.json").write_text(json.dumps({"dataset": name, "runs": 2}))
    (a / "summary.json").write_text(json.dumps({"avg@2": 0.5, "tasks": 4}))
    (a / "scaling.png").write_bytes(PNG)
    (b / "summary.json").write_text('{"avg@2": 0.')  # being written: not yet JSON
    (bench / "notes").mkdir()
    (bench / "notes" / "summary.json").write_text("{}")
    (solo / "summary.json").write_text(json.dumps({"avg@2": 1.0, "tasks": 1}))
    (solo / "turns.png").write_bytes(b"\x89PNG\r\n\x1a\nturns")
    (tmp_path / "secret.png").write_bytes(b"not a plot")
    return [bench, solo, tmp_path / "absent"]


@pytest.fixture
def client(roots: list[Path], tmp_path: Path) -> Iterator[TestClient]:
    with ui_client(f"sqlite:///{tmp_path / 'runs.db'}", bench_roots=roots) as client:
        yield client


def test_bench_folders_are_listed_with_their_summaries(client: TestClient, tmp_path: Path) -> None:
    rows = client.get("/api/bench").json()["benches"]
    assert [(r["index"], Path(r["folder"]).name) for r in rows] == [
        (0, "a-gaia"),
        (1, "b-xbench"),
        (2, "solo"),
    ]
    assert rows[0]["settings"] == {"dataset": "gaia", "runs": 2}
    assert rows[0]["summary"] == {"avg@2": 0.5, "tasks": 4}
    assert rows[0]["plots"] == ["scaling.png"]
    assert (rows[1]["summary"], rows[1]["plots"]) == (None, [])
    assert (rows[2]["summary"], rows[2]["plots"]) == ({"avg@2": 1.0, "tasks": 1}, ["turns.png"])


def test_a_plot_is_served_by_the_folders_number(client: TestClient) -> None:
    plot = client.get("/api/bench/0/scaling.png")
    assert plot.status_code == 200
    assert plot.headers["content-type"] == "image/png"
    assert plot.content == PNG
    assert client.get("/api/bench/2/turns.png").content.endswith(b"turns")


@pytest.mark.parametrize(
    "path",
    [
        "/api/bench/99/scaling.png",
        "/api/bench/1/scaling.png",  # a plot the folder has not drawn yet
        "/api/bench/0/turns.png",
        "/api/bench/0/bench.json",  # only the plots are served
        "/api/bench/0/summary.json",
        "/api/bench/0/..%2F..%2Fsecret.png",
        "/api/bench/0/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/bench/0/%2E%2E",
        "/api/bench/-1/scaling.png",
        "/api/bench/x/scaling.png",
        f"/api/bench/{'9' * 30}/scaling.png",
    ],
)
def test_anything_but_a_listed_plot_is_a_404(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]
    assert b"not a plot" not in answer.content
