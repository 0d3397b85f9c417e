"""Training the transplanted blocks (notebook 05): distillation from the LSTM, then fine-tuning on recordings.

    config       `TrainConfig` and its CI / full defaults, the learning-rate schedule
    items        `TrainItem`, length buckets, right-padded batches
    losses       distillation and fine-tuning losses (the log-mel comes from helpers.data.features)
    stage_losses the loss of one step, one function per stage and phase (layer matching, distillation,
                 fine-tuning), picked by `Trainer.compute_loss`
    checkpoints  atomic, checksummed, resumable checkpoints
    resumable    which checkpoint a run may resume from (same stage, design, data, schedule)
    distributed  several processes under torchrun: DistributedDataParallel, gradients averaged
    trainer      the `Trainer` (on helpers.kokoro.forward, the one forward path)
    selection    held-out scores (by helpers.compare.scoring), and which step a run keeps (stage 2: the lowest
                 held-out tempo-normalised boundary error, the start competing)
    recipe       THE stage-1 recipe (`run`): layer matching, chained, many voices, fitted to a time budget
    pick         `pick_stage1`: the stage-1 adapter stage 2 starts from, the best on the dev half
    stage2       `finetune`: stage 2 for the Mamba and for the same-recipe LSTM control, with the fitted voice
    cli          `python -m helpers.train ...`: notebook 05's training (stage 2 also under torchrun)

Only the new blocks learn (helpers.transplant.peft; for the LSTM control, the LSTMs they replace); everything
else is frozen but differentiable.
"""

from helpers.train.config import TrainConfig, TrainingDiverged
from helpers.train.items import TrainItem, as_train_items, bucketed_batches
from helpers.train.trainer import Trainer

__all__ = [
    "TrainConfig",
    "TrainingDiverged",
    "TrainItem",
    "as_train_items",
    "bucketed_batches",
    "Trainer",
]
