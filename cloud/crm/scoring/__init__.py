"""Lead scoring and qualification, next-stage prediction and journey analytics (issue 16)."""
