"""The built-in demo: a small CNN trained on scikit-learn's bundled digits (no downloads).

The model and its data splits are cached after the first training in
`$EDGEX_CACHE_DIR` (default `~/.cache/edgex`), keyed by a version, and
written atomically so that two runs never see a half cache.

Example:
    >>> demo = load_demo()
    >>> demo.model_path.name, len(demo.calib), len(demo.eval)
    ('model.keras', 300, 360)
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exporter.data import Dataset, load_dataset
from exporter.progress import progress, status

DEMO_VERSION = "digits-cnn-v2"
SEED = 7
EPOCHS = 20
LABELS = [str(i) for i in range(10)]


@dataclass(frozen=True)
class Demo:
    """Paths and data of the cached demo."""

    model_path: Path
    train: Dataset
    calib: Dataset
    eval: Dataset
    labels: list[str]


def cache_dir() -> Path:
    """Where edgex caches the demo: `$EDGEX_CACHE_DIR` or `~/.cache/edgex`."""
    return Path(os.environ.get("EDGEX_CACHE_DIR") or Path.home() / ".cache" / "edgex")


def _splits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_eval, y_train, y_eval = train_test_split(x, y, test_size=0.2, random_state=SEED, stratify=y)
    return (x_train, y_train), (x_eval, y_eval)


def build_model():
    """The demo architecture: two small convolutions and a dense classifier (tf_keras).

    Layer names are fixed so that recipes and `--skip-layer` can name them whatever else was built first.
    """
    from exporter import tf as tfmod

    keras = tfmod.keras()
    layers = keras.layers
    return keras.Sequential([
        layers.Input((8, 8, 1), name="image"),
        layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2d"),
        layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2d_1"),
        layers.MaxPooling2D(2, name="max_pooling2d"),
        layers.Flatten(name="flatten"),
        layers.Dense(64, activation="relu", name="dense"),
        layers.Dense(10, activation="softmax", name="probs"),
    ], name="digits_cnn")


def _train(directory: Path) -> None:
    from exporter import tf as tfmod

    keras = tfmod.keras()
    keras.utils.set_random_seed(SEED)
    (x_train, y_train), (x_eval, y_eval) = _splits()
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    with progress("training the demo CNN", total=EPOCHS) as advance:
        callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: advance())
        model.fit(x_train, y_train, epochs=EPOCHS, batch_size=32, verbose=0, callbacks=[callback], shuffle=True)
    model.save(directory / "model.keras")
    np.savez(directory / "train.npz", x=x_train, y=y_train)
    np.savez(directory / "calib.npz", x=x_train[:300])
    np.savez(directory / "eval.npz", x=x_eval, y=y_eval)
    (directory / "labels.txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")


def load_demo() -> Demo:
    """Return the demo model and data, training and caching them on first use."""
    final = cache_dir() / DEMO_VERSION
    if not (final / "model.keras").is_file():
        status(f"training the demo model once (cached in {final})")
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=final.parent))
        try:
            _train(tmp)
            try:
                os.replace(tmp, final)
            except OSError:      # another process finished first: keep its cache
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return Demo(
        model_path=final / "model.keras",
        train=load_dataset(final / "train.npz", role="training"),
        calib=load_dataset(final / "calib.npz", role="calibration"),
        eval=load_dataset(final / "eval.npz", role="evaluation"),
        labels=LABELS,
    )
