"""Unified gradient reweighting (UGR) for audio source separation."""

__version__ = "0.1.0"
