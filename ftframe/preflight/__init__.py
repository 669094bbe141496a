"""Preflight: everything that can be known about the data before a single training step.

``format_checks`` validates canonical records (the OpenAI cookbook's checks, by error type);
``report`` builds the full report (format errors, token statistics, class balance, duplicates, leakage,
cost and time); ``render`` prints it and draws the token-length histogram.
"""
