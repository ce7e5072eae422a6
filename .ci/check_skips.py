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
    ran = {key: 0 for key in MUST_RUN}
    bad = []
    for case in cases:
        where = f"{case.get('classname', '')}.{case.get('name', '')}"
        keys = [key for key in MUST_RUN if key in where]
        if not keys:
            continue
        skip = case.find("skipped")
        if skip is not None and skip.get("type") != "pytest.xfail":
            bad.append(f"{where}: {skip.get('message', '')}")
        else:
            ran[keys[0]] += 1
    print(f"check_skips: {len(cases)} tests in the report; must-run tests that ran: {ran}; "
          f"skipped: {len(bad)}")
    bad += [f"no test of {key} ran" for key, count in ran.items() if count == 0]
    if bad:
        sys.exit("check_skips: these tests must run in CI but were skipped:\n  " + "\n  ".join(bad[:30]))


if __name__ == "__main__":
    main(sys.argv[1])
