"""The documentation site builds under ``mkdocs build --strict`` (no broken link, no missing included file, an API
reference generated from the current code), a broken link fails that build, and every docs code block marked
runnable (an HTML comment ``<!-- runnable -->`` on the line before it) runs as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RUNNABLE = re.compile(r"^<!-- runnable -->\n```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
BLOCKS = [
    (page.name, index, block)
    for page in sorted(DOCS.glob("*.md"))
    for index, block in enumerate(RUNNABLE.findall(page.read_text()))
]


def build(config_dir: Path, site: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of the config in ``config_dir`` (snippets and mkdocstrings paths are relative to it)."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=config_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def nav_pages(nav) -> list[str]:
    """The page files of a mkdocs nav, in order."""
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def load_config() -> dict:
    """mkdocs.yml as data (it holds no python tags)."""
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def test_the_docs_site_builds_strict(tmp_path):
    site = tmp_path / "site"
    result = build(ROOT, site)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    pages = nav_pages(load_config()["nav"])
    assert {
        "index.md",
        "method.md",
        "api.md",
        "reference.md",
        "recipes.md",
        "data.md",
        "slurm_gpu.md",
        "speed.md",
        "benchmarks.md",
        "results.md",
        "troubleshooting.md",
    } <= set(pages)
    for page in pages:
        html = site / ("index.html" if page == "index.md" else f"{page[:-3]}/index.html")
        assert html.is_file(), f"{page} produced no {html.relative_to(site)}"
    reference = (site / "reference/index.html").read_text()
    for name in ("reweigh_backward", "reweigh", "global_pmf", "UGRLoss", "UGRModule", "build"):
        assert name in reference, f"the API reference lacks {name}"
    assert 'id="ugr.core.step.reweigh_backward"' in reference  # generated from the code, not written by hand
    benchmarks = (site / "benchmarks/index.html").read_text()
    assert "model_speed.py" in benchmarks  # bench/README.md included by the snippets extension
    assert (site / "figures/three_effects_operating_points.png").is_file()


def test_a_broken_docs_link_fails_the_strict_build(tmp_path):
    """A copy of the site with one link to a missing page: --strict must refuse it (so the test above proves it)."""
    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    for name in ("ugr", "egs", "bench"):  # snippets' base_path and mkdocstrings' paths are relative to the config
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    page = tmp_path / "docs/troubleshooting.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no_such_page.md).\n")
    result = build(tmp_path, tmp_path / "site")
    assert result.returncode != 0, f"a broken link built under --strict:\n{result.stdout}\n{result.stderr}"
    assert "no_such_page.md" in result.stdout + result.stderr


def test_the_three_entry_points_are_runnable_in_the_api_page():
    api = [block for page, _, block in BLOCKS if page == "api.md"]
    assert [("reweigh(" in b, "UGRLoss(" in b, "UGRModule" in b) for b in api] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]


@pytest.mark.parametrize("page,index,block", BLOCKS, ids=[f"{page}:{index}" for page, index, _ in BLOCKS])
def test_runnable_docs_block_runs_as_written(page, index, block, tmp_path, monkeypatch):
    """In a fresh namespace as a script (``__main__``), from an empty folder (Lightning writes its logs there)."""
    monkeypatch.chdir(tmp_path)
    exec(compile(block, f"docs/{page} block {index}", "exec"), {"__name__": "__main__"})
