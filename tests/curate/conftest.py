"""Fixtures for the curation tests."""

from __future__ import annotations

import pytest

from tests.curate._data import make_table


@pytest.fixture
def small():
    return make_table()


@pytest.fixture
def small_path(tmp_path, small):
    from mlcycle import io

    p = tmp_path / "small.parquet"
    io.write_table(small, p)
    return p
