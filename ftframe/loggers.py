"""Lightning logger factories for the ``logger`` config group where a plain ``_target_`` is not enough.

The engine instantiates the group's config with ``save_dir=<run dir>`` (``TrainJob.lightning_logger``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def mlflow_local(save_dir: str, experiment_name: str = "ftframe", run_name: str | None = None,
                 tracking_uri: str | None = None, **kwargs: Any) -> Any:
    """An ``MLFlowLogger`` whose store lives in the run dir: ``mlflow/mlflow.db`` and ``mlflow/artifacts/``.

    A SQLite file rather than MLflow's ``./mlruns`` folder store: MLflow 3 keeps the folder store in
    maintenance mode and refuses it unless ``MLFLOW_ALLOW_FILE_STORE`` is set. With ``tracking_uri``
    (e.g. a tracking server) the run is logged there instead.
    """
    from lightning.pytorch.loggers import MLFlowLogger

    if tracking_uri:
        return MLFlowLogger(experiment_name=experiment_name, run_name=run_name, tracking_uri=tracking_uri, **kwargs)
    folder = Path(save_dir).resolve() / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return MLFlowLogger(experiment_name=experiment_name, run_name=run_name,
                        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
                        artifact_location=(folder / "artifacts").as_uri(), **kwargs)
