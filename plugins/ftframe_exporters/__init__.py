"""First-party exporters."""
