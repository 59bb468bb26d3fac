"""Small tf_keras models with several inputs and outputs, and their data (tests/test_multi_io.py, tests/test_readme.py).

`two_io` has inputs `image` (8x8x1) and `meta` (3) and outputs `cls` (softmax over 5 classes: where a bright
patch sits in the image) and `box` (2 linear values: the image's mean and twice meta[1]); `two_in` has the
same inputs and `cls` alone. Both are trained a few epochs on synthetic data, seeded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

PATCHES = ((0, 0), (0, 5), (5, 0), (5, 5), (2, 2))     # the top-left corner of each class's 3x3 patch


def samples(n: int, seed: int) -> dict[str, np.ndarray]:
    """`n` samples: image, meta, the class `y` and the `box` target."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, len(PATCHES), n)
    image = rng.normal(0.0, 0.1, (n, 8, 8, 1)).astype(np.float32)
    for i, k in enumerate(y):
        r, c = PATCHES[k]
        image[i, r:r + 3, c:c + 3, 0] += 1.0
    meta = rng.random((n, 3), dtype=np.float32)
    box = np.stack([image.reshape(n, -1).mean(axis=1), 2 * meta[:, 1]], axis=1).astype(np.float32)
    return {"image": image, "meta": meta, "y": y, "box": box}


def build(two_outputs: bool = True, epochs: int = 8):
    """The model (`two_io`, or `two_in` with `two_outputs` False), trained on 800 samples."""
    from exporter import tf as tfmod

    keras = tfmod.keras()
    layers = keras.layers
    keras.utils.set_random_seed(3)
    image, meta = layers.Input((8, 8, 1), name="image"), layers.Input((3,), name="meta")
    h = layers.Conv2D(8, 3, activation="relu", name="conv")(image)
    h = layers.Flatten(name="flatten")(layers.MaxPooling2D(2, name="pool")(h))
    h = layers.Concatenate(name="join")([h, layers.Dense(4, activation="relu", name="meta_dense")(meta)])
    h = layers.Dense(16, activation="relu", name="hidden")(h)
    cls = layers.Dense(5, activation="softmax", name="cls")(h)
    outputs = [cls, layers.Dense(2, name="box")(h)] if two_outputs else cls
    model = keras.Model([image, meta], outputs, name="two_io" if two_outputs else "two_in")
    data = samples(800, seed=1)
    if two_outputs:
        model.compile("adam", ["sparse_categorical_crossentropy", "mse"])
        model.fit([data["image"], data["meta"]], [data["y"], data["box"]], epochs=epochs, batch_size=32, verbose=0)
    else:
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit([data["image"], data["meta"]], data["y"], epochs=epochs, batch_size=32, verbose=0)
    return model


def write(folder: Path, two_outputs: bool = True, stem: str = "two_io") -> dict[str, Path]:
    """Save the model and its data files into `folder`: `<stem>.keras`, `<stem>_calib.npz` (image, meta),
    `<stem>_eval.npz` (image, meta, y), `<stem>_eval_x.npz` (x0, x1, y) and `<stem>_train.npz` (image, meta, y)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"model": folder / f"{stem}.keras", "calib": folder / f"{stem}_calib.npz",
             "eval": folder / f"{stem}_eval.npz", "eval_x": folder / f"{stem}_eval_x.npz",
             "train": folder / f"{stem}_train.npz"}
    build(two_outputs).save(paths["model"])
    calib, evaluation, train = samples(64, seed=2), samples(200, seed=3), samples(256, seed=4)
    np.savez(paths["calib"], image=calib["image"], meta=calib["meta"])
    np.savez(paths["eval"], image=evaluation["image"], meta=evaluation["meta"], y=evaluation["y"])
    np.savez(paths["eval_x"], x0=evaluation["image"], x1=evaluation["meta"], y=evaluation["y"])
    np.savez(paths["train"], image=train["image"], meta=train["meta"], y=train["y"])
    return paths
