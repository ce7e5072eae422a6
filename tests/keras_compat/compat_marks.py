"""Marks for behaviours where fastnn and Keras differ.

Both are strict xfails: a test that starts passing (the gap closed) fails the
suite until its mark is removed. Every marked behaviour is listed, with the
reason, in docs/keras-differences.md.
"""
import pytest

PAGE = "docs/keras-differences.md"


def missing(what):
    """A Keras behaviour fastnn does not have yet."""
    return pytest.mark.xfail(strict=True, reason=f"missing: {what} (listed in {PAGE})")


def deliberate(what):
    """A behaviour fastnn changes on purpose."""
    return pytest.mark.xfail(strict=True, reason=f"deliberate: {what} (see {PAGE})")


def cases(names, marks):
    """``pytest.param`` for each name, with the mark ``marks`` gives it (if any)."""
    return [pytest.param(n, marks=marks[n], id=str(n)) if n in marks else pytest.param(n, id=str(n))
            for n in names]


def assert_close(got, want, rtol=1e-5, atol=1e-6):
    import numpy
    numpy.testing.assert_allclose(numpy.asarray(got, dtype="float64"),
                                  numpy.asarray(want, dtype="float64"), rtol=rtol, atol=atol)
