"""First-party provider backends: fine-tune through hosted APIs (OpenAI, Together AI) with the same
config, evaluation, gate and report as a local run."""
