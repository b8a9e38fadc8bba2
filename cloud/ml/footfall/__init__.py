"""Per-store footfall anomaly detection and forecasting (river)."""
