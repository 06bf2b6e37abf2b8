"""pipeline/data."""
