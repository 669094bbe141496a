"""First-party data formats: each converts its input into canonical chat examples."""
