"""The method's core imports without the recipe machinery: no Lightning, matplotlib or audio stack."""

from __future__ import annotations

import subprocess
import sys

CORE = ("ugr", "ugr.core.weighting", "ugr.core.pmf", "ugr.core.step", "ugr.core.distributed")
HEAVY = (
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "matplotlib",
    "asteroid",
    "asteroid_filterbanks",
    "julius",
    "soundfile",
    "torchaudio",
    "torchmetrics",
    "pystoi",
    "pesq",
    "tensorboard",
)


def imported_after(modules: tuple[str, ...]) -> set[str]:
    """Top-level packages loaded by importing ``modules`` in a fresh interpreter."""
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint(' '.join(sorted({{n.split('.')[0] for n in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(done.stdout.split())


def test_importing_the_core_loads_no_lightning_matplotlib_or_audio_stack():
    loaded = imported_after(CORE)
    assert "torch" in loaded
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_the_check_sees_heavy_imports_where_there_are_some():
    """The control: the Lightning integration does load Lightning, so the check above can fail."""
    assert "pytorch_lightning" in imported_after(("ugr.integrations.lightning",))


def test_the_tables_and_the_model_card_load_no_matplotlib_or_lightning():
    """Layering: the report's tables and ugr.report.export need no plotting and no trainer; ugr.report.figures is the
    control that loads matplotlib."""
    loaded = imported_after(("ugr.report.report", "ugr.report.export", "ugr.pipeline.score"))
    assert loaded.isdisjoint({"matplotlib", "pytorch_lightning", "lightning"}), sorted(loaded)
    assert "matplotlib" in imported_after(("ugr.report.figures",))
