"""docs/custom.md: its Python examples run, in order, as a user would paste them."""
import re

import pytest


def _blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def test_the_custom_code_guide_runs(repo_root, tmp_path, monkeypatch):
    page = repo_root / "docs" / "custom.md"
    blocks = _blocks(page.read_text())
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)  # the saving example writes a file
    namespace = {"__name__": "custom_guide"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{page}:block{i}", "exec"), namespace)  # noqa: S102
        except Exception as exc:  # noqa: BLE001 -- the failure names the block
            pytest.fail(f"block {i} of docs/custom.md failed: {exc!r}\n{block}")
    assert (tmp_path / "scaled.fastnn").exists()
    assert namespace["report"].max_error < 1e-6


def test_the_guide_is_in_the_site_navigation(repo_root):
    assert "custom.md" in (repo_root / "mkdocs.yml").read_text()
