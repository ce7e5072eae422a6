"""Fail when a test that needs an optional dependency CI installs was skipped.

The Keras oracle (tests/keras_compat), the MPI tests and the scikit-learn
wrappers must run in CI, not skip quietly. Usage: check_skips.py JUNIT_XML.
"""
import sys
import xml.etree.ElementTree as ET

MUST_RUN = ("keras_compat", "test_distributed", "test_wrappers")


def main(path):
    root = ET.parse(path).getroot()
    cases = list(root.iter("testcase"))
    ran = skipped = 0
    bad = []
    for case in cases:
        where = f"{case.get('classname', '')}.{case.get('name', '')}"
        if not any(key in where for key in MUST_RUN):
            continue
        skip = case.find("skipped")
        if skip is not None and skip.get("type") != "pytest.xfail":
            skipped += 1
            bad.append(f"{where}: {skip.get('message', '')}")
        else:
            ran += 1
    print(f"check_skips: {len(cases)} tests in the report; {ran} must-run tests ran, {skipped} skipped")
    if bad:
        sys.exit("check_skips: these tests must run in CI but were skipped:\n  " + "\n  ".join(bad[:30]))


if __name__ == "__main__":
    main(sys.argv[1])
