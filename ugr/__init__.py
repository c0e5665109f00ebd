"""Unified gradient reweighting (UGR) for audio source separation, and for any per-example loss.

The method's core (``ugr.weighting``, ``ugr.step``, ``ugr.reweight``,
``ugr.distributed``) needs only torch and numpy, so importing it does not load
Lightning, matplotlib or the audio stack; ``ugr.asteroid_loss`` and
``ugr.lightning`` plug it into asteroid and Lightning, the rest are the recipes.
"""

__version__ = "0.1.0"
