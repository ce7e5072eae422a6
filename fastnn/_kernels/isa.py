"""The instruction-set cap shared by every kernel family that picks a path at run time.

``FASTNN_ISA`` (read at import) or each family's ``set_isa(name)`` can only lower
the choice: the CPU's features still decide. A cap name maps to a rung of one
ladder; each family maps the rung onto its own paths (the float32 GEMM has no
VNNI rung, so ``avxvnni`` caps it at AVX2).
"""
import os
import warnings

PORTABLE, AVX2, AVXVNNI, AVX512 = range(4)

# ``blas`` is the float32 GEMM's name for its portable rung (scipy's BLAS).
_RUNGS = {"portable": PORTABLE, "blas": PORTABLE, "avx2": AVX2, "avxvnni": AVXVNNI,
          "avx512": AVX512, "avx512vnni": AVX512, "avx512bf16": AVX512, "native": AVX512}


def rung(name):
    """The ladder rung of cap ``name``; None means ``FASTNN_ISA`` or, unset, no cap."""
    if name is None:
        name = os.environ.get("FASTNN_ISA") or "native"
    try:
        return _RUNGS[str(name).strip().lower()]
    except KeyError:
        raise ValueError(f"unknown instruction set {name!r}: expected one of "
                         f"{', '.join(_RUNGS)}") from None


def rung_from_environment():
    """``FASTNN_ISA``'s rung at import, with a warning (and no cap) for a bad value."""
    try:
        return rung(None)
    except ValueError as e:
        warnings.warn(f"FASTNN_ISA ignored: {e}", RuntimeWarning, stacklevel=3)
        return AVX512
