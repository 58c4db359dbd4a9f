"""Monitoring: realised quality, drift, the continual-learning policies and their report."""
