"""Low-bit weights: 4-bit, ternary (2-bit) and binary (1-bit) kernels by quantization-aware fine-tuning.

TF-MOT has no 1-bit scheme, so this stage is our own: a straight-through
estimator (STE) fine-tunes float "shadow" weights while the forward pass sees
their quantized version. Each selected kernel is quantized per output channel:

- 4 and 2 bits: symmetric with `L = 2**(bits-1) - 1` levels each side
  (4-bit: integers -7..7, 15 values; 2-bit: -1..1, 3 values), scale
  `s_c = max|w_c| / L`, `Q(w) = clip(round(w / s_c), -L, L) * s_c`.
- 1 bit (XNOR-Net): `Q(w) = sign(w) * mean|w_c|` with sign(0) = +1, so every
  output channel holds two values, +-a_c.

Each step assigns `Q(shadow)` to the kernels, computes the loss gradient with
respect to the quantized kernels and applies it to the shadows (the gradient
flows straight through Q); at the end `Q(shadow)` is written to the kernels for
good. The result is a plain tf_keras model with the same layers.

The exported TFLite is a standard int8 model that runs in every runtime:
per-channel int8 quantization maps the few values of a channel to as few int8
codes (1-bit: exactly {-127, 127}). The low-bit structure shows up as few
unique values per channel and a much smaller gzip size, not as a smaller
flatbuffer. BinaryNet keeps the first and last layers at full precision
(accuracy drops most there); `skip_first_and_last` does that, off by default.

Example:
    >>> stage = LowBitStage({"bits": 1, "skip_first_and_last": True})
    >>> result = stage.apply(model, ctx)      # the demo CNN, 1 epoch; then convert with mode="int8"
    >>> result.metrics["unique_values_per_channel_max"]
    2
    >>> [s["layer"] for s in result.skipped]     # the first and last stay float
    ['conv2d', 'probs']
"""
from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from exporter import tf as tfmod
from exporter.progress import progress
from exporter.stages import training
from exporter.stages.base import (Family, LayerSelection, Stage, StageContext, StageResult, check_plain_model,
                                  nothing_left, register, skip_entry)

KERNEL_CLASSES = ("Conv2D", "DepthwiseConv2D", "Dense")


class LowBitConfig(LayerSelection):
    """Which kernels to quantize (Conv2D, DepthwiseConv2D and Dense ones), and to how many bits."""

    bits: Literal[4, 2, 1] = Field(..., description="bits per weight: 4 (15 levels), 2 (ternary) or 1 (binary)")
    skip_first_and_last: bool = Field(
        False, description="keep the first and last selected layers at full precision (as BinaryNet does)")

    @field_validator("layers", mode="before")
    @classmethod
    def _unset_layers(cls, value):
        """`layers: null`, as manifests written before LayerSelection hold it, meant "not given": ()."""
        return () if value is None else value


def quantize_kernel(kernel, bits: int, depthwise: bool = False):
    """Quantize a kernel per output channel (a TF op, usable inside tf.function).

    Args:
        kernel: a Conv2D `[kh, kw, in, out]`, Dense `[in, out]` or DepthwiseConv2D
            `[kh, kw, in, mult]` kernel (channels are `in * mult`).
        bits: 4, 2 or 1.
        depthwise: True for a depthwise kernel.

    Returns:
        A tensor of the kernel's shape holding at most `2**bits - 1` (bits > 1)
        or 2 (bits == 1) distinct values per output channel.
    """
    tf = tfmod.tensorflow()
    shape = tf.shape(kernel)
    channels = shape[-2] * shape[-1] if depthwise else shape[-1]
    flat = tf.reshape(kernel, tf.stack([-1, channels]))
    if bits == 1:
        alpha = tf.reduce_mean(tf.abs(flat), axis=0)
        quantized = tf.where(flat >= 0, 1.0, -1.0) * alpha
    else:
        levels = float(2 ** (bits - 1) - 1)
        scale = tf.reduce_max(tf.abs(flat), axis=0) / levels
        safe = tf.where(scale > 0, scale, tf.ones_like(scale))
        quantized = tf.clip_by_value(tf.round(flat / safe), -levels, levels) * scale
    return tf.reshape(quantized, shape)


def unique_values_per_channel(kernel: np.ndarray, depthwise: bool = False) -> int:
    """The largest number of distinct values in one output channel of a Keras kernel.

    Args:
        kernel: a Conv2D, Dense or (with `depthwise`) DepthwiseConv2D kernel.
        depthwise: True for a depthwise kernel (channels are `in * mult`).

    Returns:
        The count for the channel with the most values.
    """
    channels = kernel.shape[-2] * kernel.shape[-1] if depthwise else kernel.shape[-1]
    flat = kernel.reshape(-1, channels)
    return max(len(np.unique(flat[:, c])) for c in range(channels))


@register
class LowBitStage(Stage):
    """Fine-tune with 4-, 2- or 1-bit kernels (straight-through estimator), for int8 export.

    Config fields: see `LowBitConfig`. Skipped layers and selected layers of other
    classes than Conv2D, DepthwiseConv2D and Dense keep float weights and are listed
    in `StageResult.skipped`; the layers outside the selection are fine-tuned in
    float alongside.
    """

    name = "lowbit"
    Config = LowBitConfig
    family = Family.QUANTIZE
    needs_training = True
    int8_only = True

    def apply(self, model, ctx: StageContext) -> StageResult:
        """Quantization-aware fine-tuning of a clone of `model` with low-bit kernels.

        Args:
            model: a Sequential or functional tf_keras classifier.
            ctx: the context (labelled `train`, `training` settings, `mode` int8).

        Returns:
            A StageResult with the plain model whose selected kernels hold the
            low-bit values, and metrics `bits`, `unique_values_per_channel_max`,
            `layers_quantized`.

        Raises:
            ConversionError: subclassed or nested model.
            UsageError: the conversion mode is not int8.
            ConfigError: unknown or unsupported layer names, or nothing selected.
            DataError: no labelled training data.
        """
        check_plain_model(model, self.name)
        self.check_profile(ctx.profile, ctx.mode, ctx.previous)
        work = training.clone(model)
        selected, skipped = self._select(work, ctx)
        kernels = [(layer.depthwise_kernel, True) if _is_depthwise(layer) else (layer.kernel, False)
                   for layer in selected]
        self._train(work, kernels, ctx)
        uniques = []
        for variable, depthwise in kernels:
            uniques.append(unique_values_per_channel(variable.numpy(), depthwise))
        names = ", ".join(layer.name for layer in selected)
        notes = [f"{self.config.bits}-bit kernels in {names}; the int8 TFLite stores them as "
                 f"at most {2 if self.config.bits == 1 else 2 ** self.config.bits - 1} int8 codes per channel"]
        metrics = {"bits": self.config.bits, "unique_values_per_channel_max": int(max(uniques)),
                   "layers_quantized": len(selected)}
        return StageResult(model=work, skipped=skipped, notes=notes, metrics=metrics)

    def _select(self, model, ctx: StageContext) -> tuple[list, list[dict]]:
        """`select_layers` with the kernel classes this stage quantizes, then `skip_first_and_last`.

        Args:
            model: the working clone.
            ctx: the StageContext (its `skip_layers`).

        Returns:
            (layers to quantize, skipped entries).

        Raises:
            ConfigError: unknown names or classes, or no layer left to quantize (other classes
                than KERNEL_CLASSES are left alone and listed, never refused).
        """
        keras = tfmod.keras()
        classes = tuple(getattr(keras.layers, name) for name in KERNEL_CLASSES)
        other = f"{self.name} quantizes the kernels of {', '.join(KERNEL_CLASSES)} layers only"
        chosen, skipped = self.select(model, lambda layer: type(layer) in classes or other, ctx)
        if self.config.skip_first_and_last:
            ends = {chosen[0].name, chosen[-1].name}
            skipped += [skip_entry(layer, "first/last layer kept at full precision (skip_first_and_last)")
                        for layer in chosen if layer.name in ends]
            chosen = [layer for layer in chosen if layer.name not in ends]
            if not chosen:
                raise nothing_left(self.name, skipped)
        return chosen, skipped

    def _train(self, model, kernels, ctx: StageContext) -> None:
        """STE fine-tuning: forward with Q(shadow), gradients applied to the shadows."""
        tf, keras = tfmod.tensorflow(), tfmod.keras()
        config, bits = ctx.training, self.config.bits
        training.seed_everything(config.seed)
        (x, y), val = training.split(ctx.train, config)
        from exporter.stages.distill import outputs_probabilities

        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=not outputs_probabilities(model))
        shadows = [tf.Variable(variable.read_value(), trainable=False, name=f"shadow_{i}")
                   for i, (variable, _) in enumerate(kernels)]
        flags = [depthwise for _, depthwise in kernels]
        variables = model.trainable_variables
        by_ref = {variable.ref(): shadow for (variable, _), shadow in zip(kernels, shadows)}
        targets = [by_ref.get(v.ref(), v) for v in variables]
        optimizer = keras.optimizers.Adam(config.learning_rate)
        optimizer.build(targets)

        def assign_quantized():
            for (variable, _), shadow, depthwise in zip(kernels, shadows, flags):
                variable.assign(quantize_kernel(shadow, bits, depthwise))

        @tf.function
        def step(xb, yb):
            assign_quantized()
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True))
                if model.losses:
                    loss += tf.add_n(model.losses)
            grads = tape.gradient(loss, variables)
            optimizer.apply_gradients(zip(grads, targets))   # straight through Q onto the shadows
            return loss

        x = tuple(a.astype(np.float32) for a in x) if isinstance(x, list) else x.astype(np.float32)  # several inputs
        data = (tf.data.Dataset.from_tensor_slices((x, y))
                .shuffle(len(y), seed=config.seed, reshuffle_each_iteration=True).batch(config.batch_size))
        best, waited = None, 0
        with progress(f"{bits}-bit fine-tuning", total=config.epochs) as advance:
            for _ in range(config.epochs):
                for xb, yb in data:
                    step(xb, yb)
                advance()
                if val is None or not config.patience:
                    continue
                assign_quantized()
                val_loss = float(loss_fn(val[1], model.predict(val[0], verbose=0, batch_size=256)))
                if best is None or val_loss < best[0]:
                    best, waited = (val_loss, model.get_weights(), [s.numpy() for s in shadows]), 0
                else:
                    waited += 1
                    if waited >= config.patience:
                        break
        if best is not None:
            model.set_weights(best[1])
            for shadow, value in zip(shadows, best[2]):
                shadow.assign(value)
        assign_quantized()


def _is_depthwise(layer) -> bool:
    """True for a DepthwiseConv2D (exact class), whose kernel is `depthwise_kernel`."""
    return type(layer) is tfmod.keras().layers.DepthwiseConv2D
