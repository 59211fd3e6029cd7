"""A store URL's password never reaches what the CLI prints, however it was given."""

from __future__ import annotations

from pathlib import Path

from fleet_kit import mirograph, submit_all

SECRET = "TopSecret77"


def test_the_resume_hint_hides_the_store_password(
    postgres_server, redis_server, flows, tmp_path: Path
) -> None:
    # The test server trusts every connection: any password opens it.
    store = postgres_server.url.replace(
        "postgresql://postgres@", f"postgresql://postgres:{SECRET}@"
    )
    assert SECRET in store
    submit_all({"a": "single", "b": "single"}, flows, store, redis_server.url)
    # Given as --store: named with its password masked.
    given = mirograph(tmp_path / "home", "pause", "a", "--store", store)
    assert given.returncode == 0, given.stderr
    assert SECRET not in given.stdout + given.stderr
    assert f"mirograph resume a --store {store.replace(SECRET, '***')} --broker URL" in (
        " ".join(given.stderr.split())
    )
    # From MIROGRAPH_STORE (the README's set-up): it is the default, so not named at all.
    from_env = mirograph(tmp_path / "home", "pause", "b", env={"MIROGRAPH_STORE": store})
    assert from_env.returncode == 0, from_env.stderr
    assert SECRET not in from_env.stdout + from_env.stderr
    assert "continue with: mirograph resume b --broker URL" in " ".join(from_env.stderr.split())
