"""Shared fixtures: where the repository's examples/, bench/ and docs/ are.

The suite also runs from outside the source tree against an installed wheel
(CI does this). Tests that need repository files ask for ``repo_root``; it is
``$FASTNN_REPO_ROOT`` when set, else the directory above ``tests/`` when that
looks like a fastnn checkout or sdist. Where neither exists the test is
skipped with the reason, never passed silently.
"""
import os
from pathlib import Path

import pytest

_MARKERS = ("examples", "bench", "pyproject.toml")


def find_repo_root():
    """The fastnn repository or sdist root, or None when these tests run without one."""
    candidates = []
    if os.environ.get("FASTNN_REPO_ROOT"):
        candidates.append(Path(os.environ["FASTNN_REPO_ROOT"]))
    candidates.append(Path(__file__).resolve().parent.parent)
    for root in candidates:
        if all((root / marker).exists() for marker in _MARKERS):
            return root.resolve()
    return None


@pytest.fixture(scope="session")
def repo_root():
    root = find_repo_root()
    if root is None:
        pytest.skip("needs the fastnn repository (examples/, bench/): set FASTNN_REPO_ROOT")
    return root
