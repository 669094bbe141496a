"""The provider job's record in the run dir, written the moment the job exists.

A crashed or interrupted watcher finds the job id here and watches the same (already paid) job instead
of creating a second one. Written atomically, so a half-written record never looks complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftframe.errors import DataError
from ftframe.io import write_json

STATE_FILE = "provider_job.json"


class JobState:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / STATE_FILE

    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{self.path} is unreadable ({exc}); delete it to start a new provider job, or "
                            f"set backend.job_id to watch an existing one.") from exc
        return data if isinstance(data, dict) else {}

    def save(self, **fields: Any) -> dict[str, Any]:
        data = {**self.load(), **fields}
        write_json(self.path, data)
        return data
