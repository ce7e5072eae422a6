"""Which fastnn the benchmark scripts and their child processes import.

An installed fastnn (a wheel, or an editable install of this checkout) is left
in charge; only a bare checkout, where ``import fastnn`` finds nothing, gets
the checkout's own ``fastnn/`` put on the path. So the suite run against an
installed wheel measures that wheel, never the source tree beside it.
"""
import importlib.util
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _installed():
    return importlib.util.find_spec("fastnn") is not None


def use_checkout_if_not_installed():
    """Put the checkout on this process's ``sys.path`` when fastnn is not installed."""
    if not _installed():
        sys.path.insert(0, str(REPO))


def child_env(base=None, **overrides):
    """The environment for a child Python that must import the same fastnn as this one."""
    env = dict(os.environ if base is None else base, **overrides)
    if not _installed():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env
