"""Static files of the live dashboard page (served by the API at /dashboard)."""
