"""Customer lifetime value: BG/NBD and Gamma-Gamma fitted by maximum likelihood."""
