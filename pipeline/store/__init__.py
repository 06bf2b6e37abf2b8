"""pipeline/store."""
