"""Progressive unfreezing for ``backend=full`` (``backend.unfreeze_per_epoch``): a Lightning callback."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import BaseFinetuning


class ProgressiveUnfreezing(BaseFinetuning):
    """Unfreeze ``per_epoch`` more of ``frozen`` (bottom-up order) at each epoch start, top layers first.

    The new parameters join the optimizer as a param group at the current learning rate and follow the
    schedule from then on (the ULMFiT recipe; Lightning's ``BackboneFinetuning`` does the same for one
    backbone at one epoch).
    """

    def __init__(self, frozen: list[Any], per_epoch: int, weight_decay: float):
        super().__init__()
        self.frozen, self.per_epoch, self.weight_decay = frozen, per_epoch, weight_decay

    def due(self, epoch: int) -> list[Any]:
        """The layers that become trainable at the start of ``epoch``."""
        n = len(self.frozen)
        before, now = min(n, self.per_epoch * max(epoch - 1, 0)), min(n, self.per_epoch * epoch)
        return self.frozen[n - now:n - before]

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        # Checkpoints keep these layers too, so restoring an earlier best epoch also restores them.
        ids = {id(p) for layer in self.frozen for p in layer.parameters()}
        pl_module.checkpoint_names |= {n for n, p in pl_module.named_parameters() if id(p) in ids}

    def freeze_before_training(self, pl_module: Any) -> None:
        self.freeze(self.frozen, train_bn=False)

    def finetune_function(self, pl_module: Any, epoch: int, optimizer: Any) -> None:
        layers = self.due(epoch)
        if layers:
            base = optimizer.param_groups[0].get("initial_lr", optimizer.param_groups[0]["lr"])
            self.unfreeze_and_add_param_group(layers, optimizer, lr=optimizer.param_groups[0]["lr"])
            if len(optimizer.param_groups) > 0:
                optimizer.param_groups[-1].update(initial_lr=base, weight_decay=self.weight_decay)
        # transformers' schedulers are LambdaLR with one factor per param group: give new groups the same
        # schedule (also after a resume, when the restored groups outnumber the fresh scheduler's).
        for config in pl_module.trainer.lr_scheduler_configs:
            sched = config.scheduler
            lambdas = getattr(sched, "lr_lambdas", None)
            while lambdas is not None and len(lambdas) < len(optimizer.param_groups):
                group = optimizer.param_groups[len(lambdas)]
                lambdas.append(lambdas[0])
                if len(sched.base_lrs) < len(lambdas):
                    sched.base_lrs.append(group.get("initial_lr", group["lr"]))
