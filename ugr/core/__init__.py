"""The method's core: the weightings, the pmf over the global batch, the reweighted step. torch and numpy only."""
