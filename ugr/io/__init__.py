"""Below every layer: atomic writes of outputs, and the one-line errors of every entry point."""
