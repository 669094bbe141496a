"""Configurable data transformations, applied by the run and recorded in the manifest (``transforms``):
deduplication, PII redaction, user-given split files, and the handling of over-long examples."""
