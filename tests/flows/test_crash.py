"""Crash reports: written whatever the exception holds, secrets masked."""

from __future__ import annotations

from pathlib import Path

from mirograph.flows.crash import write_crash_report


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_a_message_that_is_not_encodable_is_written_escaped(home: Path) -> None:
    """A lone surrogate (bytes the locale could not decode) cannot be UTF-8 encoded:
    the report escapes it instead of failing, which would lose the report."""
    path = write_crash_report(_raised(ValueError("bad byte \udcff here")))
    assert path.parent == home
    assert "ValueError: bad byte \\udcff here" in path.read_text(encoding="utf-8")


def test_a_secret_in_the_message_is_masked(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("TAVILY_API_KEY", "tvly-secret-value-1234567890")
    path = write_crash_report(_raised(RuntimeError("key tvly-secret-value-1234567890")))
    text = path.read_text(encoding="utf-8")
    assert "tvly-secret-value-1234567890" not in text and "RuntimeError: key" in text
