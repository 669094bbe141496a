"""First-party metrics."""
