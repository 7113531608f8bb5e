"""Shared fixtures.

External fixtures (other projects' files with stated expected values) are found through
MLCYCLE_EXTERNAL (default: ../shared/external next to the repository). Where the folder is
absent, e.g. in a user's own clone, the tests that need it are skipped with a reason;
with MLCYCLE_REQUIRE_EXTERNAL=1 (set by .ci/run) its absence is a failure instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def external_root() -> Path:
    return Path(os.environ.get("MLCYCLE_EXTERNAL", REPO.parent / "shared" / "external"))


@pytest.fixture(scope="session")
def external() -> Path:
    root = external_root()
    if not (root / "EXPECTED.json").is_file():
        if os.environ.get("MLCYCLE_REQUIRE_EXTERNAL") == "1":
            pytest.fail(f"external fixtures required but not found at {root}")
        pytest.skip(f"external fixtures not found at {root} (set MLCYCLE_EXTERNAL to ../shared/external)")
    return root


@pytest.fixture(scope="session")
def expected(external: Path) -> dict:
    return json.loads((external / "EXPECTED.json").read_text())


@pytest.fixture
def runner():
    """A CliRunner that keeps stdout and stderr apart, and a helper to invoke the app."""
    from typer.testing import CliRunner

    from mlcycle.cli import app

    class Runner:
        def __init__(self) -> None:
            self.runner = CliRunner()

        def __call__(self, args, input=None, env=None):
            return self.runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return Runner()
