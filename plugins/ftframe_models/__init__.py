"""First-party model sources: the embedded SmolLM2-135M-Instruct and local Hugging Face folders."""
