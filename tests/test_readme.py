"""Every README code block marked runnable (an HTML comment ``<!-- runnable -->`` on the line before it) runs as
written: the three entry points (plain PyTorch, asteroid System, Lightning) stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
RUNNABLE = re.compile(r"^<!-- runnable -->\n```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)
BLOCKS = RUNNABLE.findall(README.read_text())


def test_the_three_entry_points_are_marked_runnable():
    assert len(BLOCKS) == 3
    assert [("reweigh(" in b, "UGRLoss(" in b, "UGRModule" in b) for b in BLOCKS] == [
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_runnable_readme_block_runs_as_written(index, tmp_path, monkeypatch):
    """In a fresh namespace as a script (``__main__``), from an empty folder (Lightning writes its logs there)."""
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md block {index}", "exec"), {"__name__": "__main__"})
