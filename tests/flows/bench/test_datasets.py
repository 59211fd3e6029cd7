"""Dataset loaders: the bundled examples, format detection, and one-line errors for bad rows."""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from mirograph.errors import DatasetError
from mirograph.flows.bench.datasets import FORMATS, detect_format, hle, load_dataset
from mirograph.flows.bench.datasets.standard import benchmark_name

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "bench"
CANARY = "BENCHMARK DATA SHOULD NEVER APPEAR AS PLAIN TEXT ONLINE. canary GUID test:1234"


def encrypt_browsecomp(text: str, canary: str) -> str:
    """BrowseComp's encryption (decrypt is checked on known vectors in test_datasets_canary)."""
    data = text.encode()
    digest = hashlib.sha256(canary.encode()).digest()
    key = (digest * (len(data) // 32 + 1))[: len(data)]
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, key, strict=True))).decode()


def encrypt_xbench(text: str, canary: str) -> str:
    data, key = text.encode(), canary.encode()
    stream = (key * (len(data) // len(key) + 1))[: len(data)]
    return base64.b64encode(bytes(a ^ b for a, b in zip(data, stream, strict=True))).decode()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_table(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t" if path.suffix == ".tsv" else ",")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def error_of(path: Path, benchmark: str | None = None) -> str:
    with pytest.raises(DatasetError) as caught:
        load_dataset(path, benchmark)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- the bundled examples ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "benchmark", "count", "question"),
    [
        ("gaia", "gaia", 4, "What is 17 multiplied by 23?"),
        ("gaia/metadata.jsonl", "gaia", 4, "What is 17 multiplied by 23?"),
        ("browsecomp.csv", "browsecomp", 3, "What is 12 squared?"),
        ("browsecomp-zh.csv", "browsecomp-zh", 3, "一周有几天？请只回答数字。"),
        ("xbench-deepsearch.csv", "xbench-deepsearch", 3, "一小时有多少分钟？"),
        ("hle.jsonl", "hle", 3, "What is the smallest prime number greater than 20?"),
        ("frames.tsv", "frames", 3, "What is the sum of 250 and 175?"),
        ("standard", "standard", 3, "What is 100 divided by 4?"),
    ],
)
def test_every_example_loads(name: str, benchmark: str, count: int, question: str) -> None:
    dataset = load_dataset(EXAMPLES / name)
    assert dataset.benchmark == benchmark
    assert len(dataset.tasks) == count
    assert dataset.tasks[0].question == question
    assert dataset.source.is_absolute()
    assert len({task.task_id for task in dataset.tasks}) == count


def test_gaia_example_has_levels_and_an_attached_text_file() -> None:
    tasks = load_dataset(EXAMPLES / "gaia").tasks
    assert {task.group for task in tasks} == {"1", "2", "3"}
    inventory = tasks[1].files[0]
    assert inventory.is_absolute() and inventory.name == "inventory.txt"
    assert "green crates: 23" in inventory.read_text()
    assert tasks[1].ground_truth == "46"
    assert tasks[1].metadata["Annotator Metadata"]["Tools"] == "File reader"


def test_encrypted_examples_decrypt_answers_and_topics() -> None:
    browsecomp = load_dataset(EXAMPLES / "browsecomp.csv").tasks
    assert [(t.task_id, t.ground_truth, t.group) for t in browsecomp][:2] == [
        ("0", "144", "Math"),
        ("1", "366", "Calendar"),
    ]
    zh = load_dataset(EXAMPLES / "browsecomp-zh.csv").tasks
    assert (zh[2].ground_truth, zh[2].group) == ("H2O", "科学")
    xbench = load_dataset(EXAMPLES / "xbench-deepsearch.csv").tasks
    assert (xbench[2].task_id, xbench[2].ground_truth) == ("3", "水星")
    assert xbench[0].metadata["reference_steps"] == "一小时等于六十分钟。"


def test_hle_example_skips_the_image_row_and_counts_it() -> None:
    path = EXAMPLES / "hle.jsonl"
    dataset = load_dataset(path)
    assert "hle-ex-3" not in {task.task_id for task in dataset.tasks}
    assert hle.skipped_images(path) == 1
    assert dataset.tasks[0].group == "Math"
    assert "canary" not in dataset.tasks[0].metadata


def test_frames_example_ids_and_groups() -> None:
    tasks = load_dataset(EXAMPLES / "frames.tsv").tasks
    assert [t.task_id for t in tasks] == ["0", "1", "2"]
    assert tasks[1].group == "Numerical reasoning | Temporal reasoning"
    assert tasks[1].ground_truth == "11:15"


def test_standard_example_attaches_its_file() -> None:
    task = load_dataset(EXAMPLES / "standard").tasks[1]
    assert task.files[0].name == "notes.txt" and task.files[0].is_file()
    assert task.group == "2"


def test_loading_is_deterministic_and_limit_takes_the_first() -> None:
    path = EXAMPLES / "gaia"
    assert load_dataset(path) == load_dataset(path)
    limited = load_dataset(path, limit=2)
    assert [t.task_id for t in limited.tasks] == ["gaia-ex-1", "gaia-ex-2"]


# -- detection and naming --------------------------------------------------------------


def test_formats_describe_every_supported_format() -> None:
    assert set(FORMATS) == {
        "gaia", "browsecomp", "browsecomp-zh", "xbench-deepsearch", "hle", "frames", "standard"
    }  # fmt: skip


def test_detection_reads_header_and_first_row(tmp_path: Path) -> None:
    frames_csv = write_table(tmp_path / "x.csv", ["Prompt", "Answer"], [["q", "a"]])
    assert detect_format(frames_csv) == "frames"
    hle_csv = write_table(tmp_path / "y.csv", ["id", "question", "answer"], [["1", "q", "a"]])
    assert detect_format(hle_csv) == "hle"
    gaia_rows = write_jsonl(tmp_path / "rows.jsonl", [{"Question": "q", "Final answer": "a"}])
    assert detect_format(gaia_rows) == "gaia"
    assert detect_format(tmp_path) is None


def test_standard_benchmark_name_comes_from_folder_or_flag(tmp_path: Path) -> None:
    folder = tmp_path / "gaia-2023-validation"
    folder.mkdir()
    row = {"task_id": 7, "task_question": "q", "ground_truth": "a"}
    path = write_jsonl(folder / "standardized_data.jsonl", [row])
    dataset = load_dataset(path)
    assert (dataset.benchmark, dataset.tasks[0].task_id) == ("gaia", "7")
    assert load_dataset(path, "my-bench").benchmark == "my-bench"
    assert benchmark_name(Path("browsecomp_zh.jsonl")) == "browsecomp-zh"
    assert benchmark_name(Path("xbench-2505/standardized_data.jsonl")) == "xbench-deepsearch"


def test_benchmark_flag_forces_the_format_and_name(tmp_path: Path) -> None:
    row = [encrypt_browsecomp("谁?", CANARY), encrypt_browsecomp("我", CANARY), "t", CANARY]
    path = write_table(
        tmp_path / "test_set.csv", ["problem", "answer", "problem_topic", "canary"], [row]
    )
    assert load_dataset(path).benchmark == "browsecomp-zh"  # CJK questions
    assert load_dataset(path, "browsecomp").benchmark == "browsecomp"


def test_browsecomp_id_column_is_the_task_id(tmp_path: Path) -> None:
    rows = [["b-9", encrypt_browsecomp("Q?", CANARY), encrypt_browsecomp("A", CANARY), "", CANARY]]
    header = ["id", "problem", "answer", "problem_topic", "canary"]
    task = load_dataset(write_table(tmp_path / "bc.csv", header, rows)).tasks[0]
    assert (task.task_id, task.question, task.group) == ("b-9", "Q?", None)


def test_xbench_without_id_numbers_rows(tmp_path: Path) -> None:
    key = "k1"
    rows = [[encrypt_xbench(f"q{i}", key), encrypt_xbench(f"a{i}", key), key] for i in range(2)]
    dataset = load_dataset(
        write_table(tmp_path / "DeepSearch.csv", ["prompt", "answer", "canary"], rows)
    )
    assert [(t.task_id, t.ground_truth) for t in dataset.tasks] == [("0", "a0"), ("1", "a1")]


def test_hle_parquet_needs_pyarrow_or_reads(tmp_path: Path) -> None:
    path = tmp_path / "hle.parquet"
    if importlib.util.find_spec("pyarrow") is None:
        path.write_bytes(b"PAR1")
        assert "export the dataset to JSONL" in error_of(path)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(
            pa.Table.from_pylist([{"id": "p", "question": "q", "answer": "a", "image": ""}]), path
        )
        assert load_dataset(path).tasks[0].task_id == "p"


# -- one-line errors ------------------------------------------------------------------


def test_missing_path_and_unknown_format_list_the_formats(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nope.jsonl")
    assert "nope.jsonl: no such file" in message and "gaia, browsecomp" in message
    odd = tmp_path / "data.txt"
    odd.write_text("hello\n")
    assert "cannot tell the dataset's format; supported formats: gaia" in error_of(odd)
    assert "unknown benchmark 'gaiaa'" in error_of(EXAMPLES / "gaia", "gaiaa")


def test_bad_json_line(tmp_path: Path) -> None:
    path = tmp_path / "standardized_data.jsonl"
    path.write_text('{"task_id": "1", "task_question": "q", "ground_truth": "a"}\n\n{oops\n')
    assert error_of(path).startswith(f"{path}:3: not valid JSON")


def test_missing_field_names_file_line_and_field(tmp_path: Path) -> None:
    rows = [
        {"task_id": "1", "task_question": "q", "ground_truth": "a"},
        {"task_id": "2", "task_question": "q"},
    ]
    path = write_jsonl(tmp_path / "standardized_data.jsonl", rows)
    assert error_of(path) == (
        f"{path}:2: field 'ground_truth' is missing; every row needs task_id, task_question and "
        "ground_truth"
    )


def test_wrong_type(tmp_path: Path) -> None:
    rows = [{"task_id": "1", "task_question": ["q"], "ground_truth": "a"}]
    path = write_jsonl(tmp_path / "standardized_data.jsonl", rows)
    assert f"{path}:1: field 'task_question' is a list, not text" in error_of(path)
    meta = [{"task_id": "1", "task_question": "q", "ground_truth": "a", "metadata": "x"}]
    write_jsonl(path, meta)
    assert "field 'metadata' is a str, not an object" in error_of(path)


def test_duplicate_task_id(tmp_path: Path) -> None:
    rows = [{"task_id": "1", "task_question": "q", "ground_truth": "a"}] * 2
    path = write_jsonl(tmp_path / "standardized_data.jsonl", rows)
    assert error_of(path) == f"{path}:2: task_id '1' repeats line 1; task ids must be unique"


def test_missing_attached_file_names_where_it_looked(tmp_path: Path) -> None:
    row = {"task_id": "t", "Question": "q", "Level": 1, "Final answer": "a", "file_name": "f.pdf"}
    path = write_jsonl(tmp_path / "metadata.jsonl", [row])
    message = error_of(tmp_path)
    assert message.startswith(f"{path}:1: attached file 'f.pdf' not found")
    assert str((tmp_path / "f.pdf").resolve()) in message


def test_gaia_test_split_has_no_ground_truth(tmp_path: Path) -> None:
    row = {"task_id": "t", "Question": "q", "Level": 2, "Final answer": "?", "file_name": ""}
    path = write_jsonl(tmp_path / "metadata.jsonl", [row])
    assert "task 't' has no ground truth ('Final answer' is '?'" in error_of(path)


def test_csv_missing_columns(tmp_path: Path) -> None:
    path = write_table(tmp_path / "bc.csv", ["problem", "canary"], [["x", "y"]])
    assert error_of(path, "browsecomp").startswith(
        f"{path}:1: column(s) 'answer' missing; a BrowseComp CSV needs columns problem, answer, "
        "canary"
    )


def test_bad_base64_and_wrong_canary(tmp_path: Path) -> None:
    header = ["problem", "answer", "problem_topic", "canary"]
    good = [encrypt_browsecomp("q", CANARY), encrypt_browsecomp("a", CANARY), "t", CANARY]
    path = write_table(tmp_path / "bc.csv", header, [good, ["%%%", good[1], "t", CANARY]])
    assert error_of(path).startswith(f"{path}:3: field 'problem' cannot be decrypted (not base64)")
    # xbench's key on a BrowseComp cell: bytes that are not UTF-8 once decrypted.
    cell = encrypt_xbench("é" * 8, "key")
    xb = write_table(tmp_path / "xb.csv", ["prompt", "answer", "canary"], [[cell, cell, "other"]])
    assert "field 'prompt' cannot be decrypted (not UTF-8" in error_of(xb)


def test_empty_dataset(tmp_path: Path) -> None:
    path = tmp_path / "frames.tsv"
    write_table(path, ["", "Prompt", "Answer"], [])
    assert (
        error_of(path)
        == f"{path}: no tasks in the file; expected FRAMES rows (every FRAMES row needs Prompt "
        "and Answer)"
    )
    only_images = write_jsonl(
        tmp_path / "hle.jsonl", [{"id": "1", "question": "q", "answer": "a", "image": "x"}]
    )
    assert "all 1 rows have an image" in error_of(only_images)


def test_limit_must_be_positive() -> None:
    with pytest.raises(DatasetError, match="limit 0"):
        load_dataset(EXAMPLES / "gaia", limit=0)


def test_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "standardized_data.jsonl"
    path.write_bytes(b'{"task_id": "\xff"}\n')
    assert error_of(path).startswith(f"{path}: not UTF-8 text")


def test_excel_is_refused_with_the_export_hint(tmp_path: Path) -> None:
    path = tmp_path / "browsecomp-zh-encrypted.xlsx"
    path.write_bytes(b"PK\x03\x04")
    assert "export it to CSV with the same columns (Topic, Question, Answer, canary)" in error_of(
        path
    )


def test_standard_file_path_is_found_by_name(tmp_path: Path) -> None:
    (tmp_path / "doc.txt").write_text("x")
    row = {"task_id": "1", "task_question": "q", "ground_truth": "a", "file_path": "data/x/doc.txt"}
    task = load_dataset(write_jsonl(tmp_path / "standardized_data.jsonl", [row])).tasks[0]
    assert task.files == ((tmp_path / "doc.txt").resolve(),)


def test_an_attachment_outside_the_dataset_folder_is_refused(tmp_path: Path) -> None:
    """A row must not hand the agent (and the model endpoint) any file of this machine."""
    data = tmp_path / "data"
    data.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2\n")
    (data / "link.txt").symlink_to(secret)
    (data / "folder").mkdir()
    for name in ("../secret.txt", str(secret), "link.txt"):
        row = {"task_id": "t", "task_question": "q", "ground_truth": "a", "file_name": name}
        path = write_jsonl(data / "standardized_data.jsonl", [row])
        message = error_of(path)
        assert message.startswith(f"{path}:1: attached file {name!r} is outside"), message
    row = {"task_id": "t", "task_question": "q", "ground_truth": "a", "file_name": "folder"}
    assert "is not a file" in error_of(write_jsonl(data / "standardized_data.jsonl", [row]))


def test_odd_ids_and_deep_json_are_row_errors(tmp_path: Path) -> None:
    path = tmp_path / "standardized_data.jsonl"
    path.write_text('{"task_id": NaN, "task_question": "q", "ground_truth": "a"}\n')
    assert error_of(path).startswith(f"{path}:1: field 'task_id' is nan")
    path.write_text("[" * 100_000 + "\n")
    assert "nested too deeply" in error_of(path, "standard")


def test_a_nul_character_is_a_row_error(tmp_path: Path) -> None:
    path = tmp_path / "standardized_data.jsonl"
    path.write_text('{"task_id": "t", "task_question": "a\\u0000b", "ground_truth": "a"}\n')
    assert error_of(path).startswith(f"{path}:1: field 'task_question' holds a NUL character")
