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


def pytest_configure(config):
    """Stop at once when the imported fastnn has no compiled kernels.

    That happens when ``python -m pytest`` runs inside a checkout that was
    installed without ``-e``: the current directory's uncompiled ``fastnn/``
    shadows the installed package.
    """
    import importlib.util
    spec = importlib.util.find_spec("fastnn")
    if spec is None:
        raise pytest.UsageError("fastnn is not importable: install it (pip install -e . in a checkout)")
    if importlib.util.find_spec("fastnn._kernels._blas") is None:
        raise pytest.UsageError(
            f"the fastnn imported from {spec.origin} has no compiled kernels. Inside a source "
            "checkout build them in place (pip install -e .); to test an installed wheel, run "
            "pytest from a directory outside the checkout.")


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


@pytest.fixture(scope="session")
def subprocess_env():
    """Environment for a child Python that must import the same fastnn as this process.

    PYTHONPATH names the directory holding the imported ``fastnn`` package (the
    checkout in an editable run, site-packages against an installed wheel), so a
    child never picks up an uncompiled source tree by accident.
    """
    import fastnn
    package_parent = str(Path(fastnn.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env
