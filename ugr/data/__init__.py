"""Data for the recipe: corpus preparation, mixture lists, on-the-fly mixing, the mini corpus."""
from .dataset import EpochSampler, ListedMixtures, OnTheFlyMixtures, collate_mixtures
from .manifest import coarse_class

__all__ = ["EpochSampler", "ListedMixtures", "OnTheFlyMixtures", "coarse_class", "collate_mixtures"]
