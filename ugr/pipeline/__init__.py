"""The recipe pipeline: configs, experiment folders and variants, training, scoring, provenance, separating with a trained model."""
