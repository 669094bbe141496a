"""First-party judges: a human-labels file, a local LLM judge with a rubric, a log-likelihood judge."""
