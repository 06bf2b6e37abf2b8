"""pipeline/make_labels."""
