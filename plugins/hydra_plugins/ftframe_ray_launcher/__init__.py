"""A Hydra launcher that runs each cell of a multirun as a Ray task (``hydra/launcher=ray_cluster``).

Hydra finds it through the ``hydra_plugins`` namespace package. It needs only ``ray``; it stands in for
``hydra-ray-launcher``, whose ``cloudpickle<3`` pin conflicts with joblib 1.6 (docs/matrices.md).
"""
