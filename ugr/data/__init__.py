"""Data for the recipes: corpus indexers (``corpora``), preparation, mixing, fixed lists and torch datasets.

Modules are imported by name (``from ugr.data.dataset import ...``): importing
this package loads nothing, so a tool that needs only ``ugr.data.audio`` does
not pull in torch datasets.
"""
