"""Predictive analytics: online churn (river), CLV (BG/NBD, Gamma-Gamma), health, footfall."""
