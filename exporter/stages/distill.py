"""Knowledge distillation: train a smaller student from the model (the teacher).

The student is either derived from the teacher by a width multiplier (the
`filters` of Conv1D/Conv2D/SeparableConv2D and the `units` of Dense layers are
scaled, except the layer that produces the outputs, which keeps the number of
classes; fresh seeded weights) or loaded from a `.keras` file (safe loading; its
weights are the starting point).

Two modes (Hinton et al., "Distilling the Knowledge in a Neural Network"):
    soft  loss = alpha * CE(y, student) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))
    hard  the student learns argmax(teacher(x)) as labels (sparse CE).

Logits: when a model ends in softmax, `log(p + 1e-7)` stands in for its logits
(softmax(log p / T) equals softmax(z / T) for the original logits z up to the
epsilon, since log p = z - logsumexp(z) only shifts every class alike); when
the final activation is linear its outputs are used as logits directly.

To show what the teacher adds, the same student architecture is also trained
from the same initial weights, seed and epochs on the labels alone; both
accuracies land in the metrics, and when the labels alone do better a note
beginning "distill:" says so (it also reaches the report's notes, so the
console shows it).

Epochs: the student starts from fresh weights, so it trains for its own
`epochs` (default 25, `DEFAULT_EPOCHS`), not the 3 fine-tuning epochs of the
other stages (the CLI's `--epochs` sets it too; in a recipe, set `epochs` in the
stage's config). With fewer, the README's demo example
(`--distill 0.5 --qat`) lost 4.7 points against the teacher; with 25 it stays
within the 1-point limit.

Example:
    >>> result = DistillStage({"width": 0.5, "epochs": 1}).apply(model, ctx)   # the demo CNN teaches
    >>> result.metrics["teacher_params"], result.metrics["student_params"]
    (38282, 9802)
    >>> sorted(name for name in result.metrics if "accuracy" in name)   # on the demo's evaluation split
    ['student_accuracy_distilled', 'student_accuracy_labels_only', 'teacher_accuracy']
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from exporter import tf as tfmod
from exporter.data import Dataset, check_labels
from exporter.errors import ConfigError, ConversionError, ExporterError
from exporter.option_names import option
from exporter.progress import progress
from exporter.stages import training
from exporter.stages.base import Family, Stage, StageConfig, StageContext, StageResult, check_plain_model, register
from exporter.stages.student import derive_student

_EPS = 1e-7
DEFAULT_EPOCHS = 25   # README `--demo --distill 0.5 --qat`: drop 0.56 pt at 25 (1.11 at 10, 15 and 30; 0.83 at 20)


def _student_hint() -> str:
    """What a refused student tells the user, naming options as the caller spells them."""
    return (f"A student model is always loaded with these checks: {option('trust_model')} applies only to the "
            f"model being exported, never to {option('student')}. Rebuild the student from standard tf_keras "
            "layers (no Lambda layers, custom classes or SavedModels) and save it as .keras or .h5, "
            f"or let edgex derive one with {option('distill')}.")


class DistillConfig(StageConfig):
    """How to derive or load the student and how to weigh the teacher's outputs."""

    mode: Literal["soft", "hard"] = Field(
        "soft", description="soft: match tempered outputs; hard: learn the teacher's argmax labels")
    temperature: float = Field(4.0, gt=0, description="softmax temperature T of the soft targets")
    alpha: float = Field(0.1, ge=0, le=1, description="weight of the true-label loss in soft mode (1 - alpha: teacher)")
    width: float | None = Field(None, gt=0, le=1, description="width multiplier deriving the student from the teacher")
    student: str | None = Field(None, description="path to a .keras student model (instead of `width`)")
    epochs: int = Field(DEFAULT_EPOCHS, ge=1, le=1000,
                        description="epochs of the student (and of its labels-only twin); a student from fresh "
                                    "weights needs more than the stages' fine-tuning epochs, which do not apply here")

    @model_validator(mode="after")
    def _one_student(self):
        """Exactly one of `width` and `student`."""
        if (self.width is None) == (self.student is None):
            raise PydanticCustomError("student_choice", "give exactly one of `width` (derive the student from "
                                      "the teacher) or `student` (a .keras file)")
        return self


def final_activation(model) -> str:
    """Name of the activation that produces the model's output.

    Args:
        model: a single-output Sequential or functional tf_keras model.

    Returns:
        "softmax" (a Softmax layer or activation), "linear", or another activation's name.
    """
    keras = tfmod.keras()
    layer = model.layers[-1] if isinstance(model, keras.Sequential) else model.get_layer(model.output_names[0])
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    return "linear" if activation is None else getattr(activation, "__name__", str(activation))


def outputs_probabilities(model) -> bool:
    """Whether the model ends in softmax.

    Args:
        model: a single-output tf_keras model.

    Returns:
        True when its outputs are probabilities, False when they are logits (or anything else).
    """
    return final_activation(model) == "softmax"


def _make_distiller(student, *, temperature: float, alpha: float, student_probs: bool):
    """A Keras Model wrapping `student`; its train_step mixes label and teacher losses.

    Data are `(x, (y, teacher_logits))`: the frozen teacher runs once, in inference
    mode, over the data beforehand (same loss as per step, one pass).
    """
    tf, keras = tfmod.tensorflow(), tfmod.keras()

    class Distiller(keras.Model):
        def __init__(self):
            super().__init__(name="distiller")
            self.student = student

        def call(self, x, training=False):
            return self.student(x, training=training)

        def _distill_losses(self, x, y, teacher_logits, training):
            out = self.student(x, training=training)
            logits = tf.math.log(out + _EPS) if student_probs else out
            hard = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
            soft_t = tf.nn.softmax(teacher_logits / temperature)
            log_s = tf.nn.log_softmax(logits / temperature)
            kl = tf.reduce_sum(soft_t * (tf.math.log(soft_t + 1e-12) - log_s), axis=-1)
            soft = temperature ** 2 * tf.reduce_mean(kl)
            return alpha * hard + (1.0 - alpha) * soft, hard, soft

        def train_step(self, data):
            x, (y, teacher_logits) = data
            with tf.GradientTape() as tape:
                loss, hard, soft = self._distill_losses(x, y, teacher_logits, True)
                if self.student.losses:
                    loss += tf.add_n(self.student.losses)
            variables = self.student.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return {"loss": loss, "label_loss": hard, "distill_loss": soft}

        def test_step(self, data):
            x, (y, teacher_logits) = data
            loss, hard, soft = self._distill_losses(x, y, teacher_logits, False)
            return {"loss": loss, "label_loss": hard, "distill_loss": soft}

    return Distiller()


@register
class DistillStage(Stage):
    """Distil the model into a smaller student (by width or from a file), soft or hard targets.

    Config fields: see `DistillConfig`. The teacher is never modified.
    """

    name = "distill"
    Config = DistillConfig
    family = Family.DISTILL
    needs_training = True
    int8_only = False

    def apply(self, model, ctx: StageContext) -> StageResult:
        """Train a student on the teacher `model`'s outputs, and a labels-only twin for comparison.

        Args:
            model: the teacher, a single-input single-output Sequential or functional
                classifier ending in softmax or linear logits. Left unchanged.
            ctx: the context (labelled `train`, `eval` for the accuracies, `training`).

        Returns:
            A StageResult with the distilled student and metrics `mode`, `temperature`,
            `alpha`, `width`, `teacher_params`, `student_params`, `teacher_accuracy`,
            `student_accuracy_distilled`, `student_accuracy_labels_only`, `epochs`.

        Raises:
            ConversionError: subclassed/nested/multi-output teacher or student, an
                output activation other than softmax or linear, or a width that
                does not rebuild.
            ConfigError: a student file that cannot be loaded or whose input or
                class count differs from the teacher's.
            DataError: no labelled training data, or labels beyond the classes.
        """
        keras = tfmod.keras()
        check_plain_model(model, self.name)
        _check_classifier(model, "teacher")
        training.split(ctx.train, ctx.training)   # raises DataError without labels
        classes = int(model.output_shape[-1])
        check_labels(ctx.train, classes)
        cfg, epochs = self.config, self.config.epochs
        student = (derive_student(model, cfg.width, ctx.training.seed) if cfg.width is not None
                   else self._load_student(model))
        initial = student.get_weights()
        student_probs = outputs_probabilities(student)
        loss = "sparse_categorical_crossentropy" if student_probs else \
            keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        if cfg.mode == "hard":
            labels = np.argmax(model.predict(ctx.train.x, verbose=0, batch_size=256), axis=1)
            hard_ctx = dataclasses.replace(ctx, train=Dataset(ctx.train.x, labels, "teacher labels"))
            training.fit(student, hard_ctx, loss=loss, epochs=epochs, description="distilling (hard labels)")
        else:
            self._fit_soft(student, model, ctx, epochs, student_probs)

        baseline = keras.models.clone_model(student)
        baseline.set_weights(initial)
        training.fit(baseline, ctx, loss=loss, epochs=epochs, description="student on labels alone", watched=False)
        metrics = {
            "mode": cfg.mode, "temperature": cfg.temperature, "alpha": cfg.alpha, "width": cfg.width,
            "teacher_params": int(model.count_params()), "student_params": int(student.count_params()),
            "teacher_accuracy": training.accuracy(model, ctx.eval),
            "student_accuracy_distilled": training.accuracy(student, ctx.eval),
            "student_accuracy_labels_only": training.accuracy(baseline, ctx.eval),
            "epochs": epochs,
        }
        soft_from_probs = cfg.mode == "soft" and (student_probs or outputs_probabilities(model))
        return StageResult(model=student, notes=_notes(cfg, metrics, soft_from_probs), metrics=metrics)

    def _load_student(self, teacher):
        """Load `student` safely (never trusted) and check it against the teacher's inputs and classes."""
        from exporter.model_io import load_model

        try:   # never trusted: --trust-model covers the exported model only
            student = load_model(self.config.student, trust_model=False, hint=_student_hint()).model
        except ExporterError as exc:   # keep the class (and exit code) of e.g. UnsafeModelError
            raise type(exc)(f"stage 'distill': cannot use student {self.config.student}: {exc}") from exc
        if student is None:
            raise ConfigError(f"stage 'distill': student {self.config.student} is not a Keras model "
                              "(a .tflite cannot be trained)")
        check_plain_model(student, self.name)
        _check_classifier(student, "student")
        if tuple(student.input_shape[1:]) != tuple(teacher.input_shape[1:]):
            raise ConfigError(f"stage 'distill': student {self.config.student} takes inputs "
                              f"{student.input_shape[1:]}, the teacher {teacher.input_shape[1:]}")
        if student.output_shape[-1] != teacher.output_shape[-1]:
            raise ConfigError(f"stage 'distill': student {self.config.student} has {student.output_shape[-1]} "
                              f"output classes, the teacher {teacher.output_shape[-1]}: they must match")
        return student

    def _fit_soft(self, student, teacher, ctx: StageContext, epochs: int, student_probs: bool) -> None:
        """Fit the Distiller on (x, (y, teacher logits)), seeded and split like `training.fit`."""
        keras, config = tfmod.keras(), ctx.training
        training.seed_everything(config.seed)
        (x, y), val = training.split(ctx.train, config)
        teacher_probs = outputs_probabilities(teacher)

        def teacher_logits(samples):
            out = teacher.predict(samples, verbose=0, batch_size=256)
            return np.log(out + _EPS).astype(np.float32) if teacher_probs else out.astype(np.float32)

        distiller = _make_distiller(student, temperature=self.config.temperature, alpha=self.config.alpha,
                                    student_probs=student_probs)
        distiller.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
        val_data = None if val is None else (val[0], (val[1], teacher_logits(val[0])))
        with progress("distilling (soft targets)", total=epochs) as advance:
            callbacks = [keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: advance())]
            if val_data is not None and config.patience:
                callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                                               restore_best_weights=True))
            distiller.fit(x, (y, teacher_logits(x)), batch_size=config.batch_size, epochs=epochs,
                          validation_data=val_data, verbose=0, shuffle=True, callbacks=callbacks)


def _notes(cfg: DistillConfig, metrics: dict, soft_from_probs: bool) -> list[str]:
    """The stage's notes: the student's size, the logits stand-in, and whether the teacher helped."""
    origin = f"width {cfg.width}" if cfg.width is not None else cfg.student
    notes = [f"student ({origin}): {metrics['student_params']} parameters vs the teacher's "
             f"{metrics['teacher_params']}; {cfg.mode} distillation for {metrics['epochs']} epochs"]
    if soft_from_probs:
        notes.append("softmax outputs: log(p + 1e-7) used as logits for the temperature")
    note = labels_only_note(metrics["student_accuracy_distilled"], metrics["student_accuracy_labels_only"])
    return notes + ([note] if note else [])


def labels_only_note(distilled: float | None, labels_only: float | None) -> str | None:
    """The note when the student trained on labels alone beats the distilled one, else None.

    It begins with "distill:", so `steps.build` also puts it in the report's notes (the console shows it).

    Args:
        distilled: eval accuracy in % of the distilled student (None without eval labels).
        labels_only: eval accuracy in % of the same student trained on the labels alone.

    Returns:
        The note, or None when distillation did at least as well or there is nothing to compare.

    Example:
        >>> labels_only_note(94.1, 95.3)
        'distill: the student trained on labels alone scored 95.3 % vs 94.1 % distilled; distillation did not help here'
        >>> labels_only_note(95.3, 94.1) is None
        True
    """
    if distilled is None or labels_only is None or labels_only <= distilled:
        return None
    return (f"distill: the student trained on labels alone scored {labels_only:.1f} % vs {distilled:.1f} % "
            "distilled; distillation did not help here")


def _check_classifier(model, role: str) -> None:
    """Refuse (ConversionError) a teacher or student that is not a one-input softmax/logits classifier."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConversionError(f"stage 'distill': the {role} has {len(model.inputs)} inputs and "
                              f"{len(model.outputs)} outputs; distillation needs a single-input, "
                              "single-output classifier")
    activation = final_activation(model)
    if activation not in ("softmax", "linear"):
        raise ConversionError(f"stage 'distill': the {role} ends in {activation!r}; distillation needs class "
                              "probabilities (softmax) or logits (linear) as output")
