"""The report: tables, statistics over seeds and mixtures, figures, the generated RESULTS.md and the model card."""
