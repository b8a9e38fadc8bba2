"""Revenue attribution, ROI and store conversion (issue 19)."""
