"""Example third-party ftframe plugin (see README.md)."""
