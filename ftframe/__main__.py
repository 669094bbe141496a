"""``python -m ftframe +task=...``: the Hydra job."""

from ftframe.cli import main

main()
