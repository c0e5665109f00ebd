"""ugr: unified gradient reweighting for audio source separation.

The one list of the package's Python dependencies. Two are installed by
``tools/install.sh`` instead of here, on purpose:

* torch: pinned by a constraints file (a CPU wheel on CPU machines, the
  machine's own CUDA build elsewhere); a bare ``torch`` requirement lets pip
  pull a multi-GB CUDA build.
* asteroid 0.7.0: installed with ``--no-deps`` because its declared
  dependencies (torchaudio, torch_stoi, pesq, an old torchmetrics) do not
  install or load with a current torch. The modules we use need only
  asteroid-filterbanks, julius, huggingface_hub, requests, scipy, numpy and
  pyyaml, which are listed below.

Metrics (``ugr.metrics``): torchmetrics' bss_eval SDR (Apache-2.0, Lightning AI),
pystoi (MIT) and pesq (MIT wrapper of the ITU-T P.862 C code, built here
with gcc). Not torch_stoi: it requires torchaudio.
"""
from setuptools import find_packages, setup

setup(
    name="ugr",
    license="MIT",
    version="0.1.0",
    description="Unified gradient reweighting (Tzinis et al., ICASSP 2021) recipes for source separation",
    packages=find_packages(include=["ugr", "ugr.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        # asteroid's used modules (models, losses, dsp):
        "asteroid-filterbanks==0.4.0",
        "julius>=0.2.7",
        "huggingface_hub",
        "requests",
        "scipy",
        "numpy",
        "pyyaml",
        # training, logging, audio, plots:
        "pytorch-lightning>=2.2,<2.7",
        "tensorboard",
        "soundfile>=0.12",
        "matplotlib",
        "tqdm",
        # metrics (ugr.metrics): torchmetrics' SDR (already a Lightning dependency), STOI, PESQ (compiles C):
        "torchmetrics>=1.0",
        "pystoi>=0.4",
        "pesq>=0.0.4",
    ],
    # mir_eval: the tests' independent bss_eval SDR (bss_eval_sources goes away in mir_eval 0.9).
    extras_require={"test": ["pytest", "hypothesis", "mir_eval>=0.7,<0.9"]},
    entry_points={
        "console_scripts": [
            "ugr-separate=ugr.separate:main",
            "ugr-export=ugr.export:main",
        ]
    },
)
