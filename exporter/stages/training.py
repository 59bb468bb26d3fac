"""Fine-tuning shared by the stages: seeds, clones, fit with early stopping and a progress bar.

Example:
    >>> from exporter.profile import load_profile
    >>> from exporter.stages.base import StageContext
    >>> ctx = StageContext(train=demo.train, eval=demo.eval, training=TrainingConfig(epochs=1),
    ...                    profile=load_profile("android-arm64-midrange"), mode="int8")
    >>> keras_model = clone(model)                 # the demo CNN stays as it is
    >>> history = fit(keras_model, ctx)            # 1 epoch; 10 % of the training split held out
    >>> sorted(history.history)
    ['accuracy', 'loss', 'val_accuracy', 'val_loss']
    >>> accuracy(keras_model, ctx.eval) > 90       # top-1 in % on the demo's evaluation split
    True
"""
from __future__ import annotations

import contextvars

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from exporter import tf as tfmod
from exporter.errors import DataError
from exporter.option_names import option
from exporter.progress import progress


EPOCH_HOOK: contextvars.ContextVar = contextvars.ContextVar("edgex_epoch_hook", default=None)
"""A callable `hook(logs)` that `fit` calls after each epoch with Keras' logs (`val_accuracy`, ...), or None.

The search sets it around a trial (exporter/optimize/trial.py) to record the per-epoch accuracy curve
and stop a trial that cannot catch up: an exception the hook raises ends `fit` and the export.
"""


class TrainingConfig(BaseModel):
    """How stages fine-tune: epochs, batch size, learning rate, early stopping, seed (NaN/Inf refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    epochs: int = Field(3, ge=1, le=1000, description="epochs per stage")
    batch_size: int = Field(32, ge=1, description="samples per step")
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Adam learning rate")
    validation_split: float = Field(0.1, ge=0, lt=1, description="share of --train held out for early stopping")
    patience: int = Field(0, ge=0, description="early-stopping patience in epochs on val_loss; 0 turns it off")
    seed: int = Field(7, description="seed for weights, shuffling and splits")


def seed_everything(seed: int) -> None:
    """Make training repeatable: Python, NumPy and TF seeds, deterministic TF ops.

    Args:
        seed: the seed for every generator.
    """
    tf = tfmod.tensorflow()
    tfmod.keras().utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):
        pass


def clone(model):
    """A fresh copy of a tf_keras model with the same weights (TF-MOT transforms consume their input).

    Args:
        model: a Sequential or functional tf_keras model.

    Returns:
        The copy (new layers, one inbound node each).
    """
    keras = tfmod.keras()
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def split(ctx_train, config: TrainingConfig):
    """Split training data into (x, y) and validation (x, y) or None, deterministically.

    Args:
        ctx_train: the training Dataset (with labels).
        config: the TrainingConfig (validation_split, seed).

    Returns:
        ((x, y), (x_val, y_val) or None); x as Keras takes it: an array, or a list of arrays for several inputs.

    Raises:
        DataError: no training data or no labels.
    """
    if ctx_train is None or ctx_train.y is None:
        raise DataError(f"fine-tuning needs labelled training data: pass {option('train', 'train.npz')} "
                        "(arrays x and y)")
    n_val = int(len(ctx_train) * config.validation_split)
    if n_val == 0:
        return (ctx_train.keras_x, ctx_train.y), None
    order = np.random.default_rng(config.seed).permutation(len(ctx_train))
    val, train = ctx_train.take(order[:n_val]), ctx_train.take(order[n_val:])
    return (train.keras_x, train.y), (val.keras_x, val.y)


def fit(model, ctx, *, loss="sparse_categorical_crossentropy", callbacks=(), epochs: int | None = None,
        description: str = "fine-tuning", watched: bool = True):
    """Compile and fine-tune `model` on the context's training data.

    Args:
        model: a tf_keras model (possibly TF-MOT wrapped).
        ctx: the StageContext (train data and TrainingConfig).
        loss: a Keras loss.
        callbacks: extra callbacks (e.g. UpdatePruningStep).
        epochs: override the configured epochs.
        description: progress-bar label.
        watched: call `EPOCH_HOOK` after each epoch (default True; False for a side model, e.g. the
            labels-only twin of a distilled student).

    Returns:
        The Keras History.
    """
    keras = tfmod.keras()
    config = ctx.training
    seed_everything(config.seed)
    (x, y), val = split(ctx.train, config)
    epochs = epochs or config.epochs
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss=loss, metrics=["accuracy"])
    with progress(description, total=epochs) as advance:
        cbs = [*callbacks, keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: advance())]
        hook = EPOCH_HOOK.get() if watched else None
        if hook is not None:
            cbs.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda _epoch, logs: hook(dict(logs or {}))))
        if val is not None and config.patience:
            cbs.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                     restore_best_weights=True))
        return model.fit(x, y, batch_size=config.batch_size, epochs=epochs, validation_data=val, verbose=0,
                         shuffle=True, callbacks=cbs)


def accuracy(model, dataset, output: int = 0) -> float | None:
    """Top-1 accuracy in % of a Keras model on a labelled dataset.

    Args:
        model: a tf_keras classifier.
        dataset: a Dataset, or None.
        output: which output the labels are for (a model with several outputs).

    Returns:
        The accuracy, or None without a labelled dataset.
    """
    if dataset is None or dataset.y is None:
        return None
    probs = model.predict(dataset.keras_x, verbose=0, batch_size=256)
    probs = probs[output] if isinstance(probs, (list, tuple)) else probs
    return float((np.argmax(probs, axis=1) == dataset.y).mean() * 100)
