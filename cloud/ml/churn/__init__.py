"""Online churn model (river): incremental features, labelling, persistence, learning loop."""
