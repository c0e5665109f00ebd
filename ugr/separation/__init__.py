"""Source separation: the models (Sudo rm -rf and asteroid's), their CPU kernels, the PIT losses and the metrics."""
