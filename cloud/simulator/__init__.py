"""Fleet simulator: realistic footfall aggregates over MQTT or gRPC for demos and load tests."""
