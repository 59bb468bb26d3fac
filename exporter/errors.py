"""The error tree of edgex and the exit codes it maps to.

Every failure a user can cause or meet is one of these classes. The CLI turns
them into one message on stderr and the class's exit code; the Python API
raises them as they are.

| code | meaning                                              |
|------|------------------------------------------------------|
| 0    | all checks pass                                      |
| 1    | a profile limit is broken (the bundle is written, marked failed) |
| 2    | bad usage, config or data                            |
| 3    | unsafe input or integrity failure refused            |
| 4    | conversion or compression failed                     |
| 5    | device or transport fault                            |
| 70   | internal error (a bug in edgex: please report it)    |
| 130  | interrupted (Ctrl-C)                                 |
| 143  | terminated (SIGTERM)                                 |
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_LIMIT = 1
EXIT_USAGE = 2
EXIT_UNSAFE = 3
EXIT_CONVERSION = 4
EXIT_DEVICE = 5
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EXIT_CODES = {
    EXIT_OK: "all checks pass",
    EXIT_LIMIT: "a profile limit is broken (bundle written, marked failed)",
    EXIT_USAGE: "bad usage, config or data",
    EXIT_UNSAFE: "unsafe input or integrity failure refused",
    EXIT_CONVERSION: "conversion or compression failed",
    EXIT_DEVICE: "device or transport fault",
    EXIT_INTERNAL: "internal error (a bug in edgex)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_TERMINATED: "terminated (SIGTERM)",
}


class ExporterError(Exception):
    """Base of every error edgex raises on purpose; carries its exit code."""

    exit_code = EXIT_USAGE


class UsageError(ExporterError):
    """A bad command-line argument or API parameter."""

    exit_code = EXIT_USAGE


class LimitError(ExporterError):
    """No result passes the profile's limits (e.g. no trial of `edgex optimize` does); names the closest."""

    exit_code = EXIT_LIMIT


class ConfigError(ExporterError):
    """A profile or recipe that does not validate (names file and field)."""

    exit_code = EXIT_USAGE


class DataError(ExporterError):
    """A data set that cannot be used: shape, dtype, NaN/Inf, too few samples."""

    exit_code = EXIT_USAGE


class ModelFileError(ExporterError):
    """A model file that is missing, empty, corrupt or of the wrong kind."""

    exit_code = EXIT_USAGE


class UnsafeModelError(ExporterError):
    """A model whose loading could run arbitrary code; refused without --trust-model."""

    exit_code = EXIT_UNSAFE


class UnsafeDataError(ExporterError):
    """A data file that would need pickle (object arrays) to load; refused."""

    exit_code = EXIT_UNSAFE


class IntegrityError(ExporterError):
    """A bundle whose files do not match its manifest, or an unsafe archive."""

    exit_code = EXIT_UNSAFE


class ConversionError(ExporterError):
    """TFLite conversion or a compression stage failed."""

    exit_code = EXIT_CONVERSION


class PreflightError(ConversionError):
    """The model uses ops or tensors the target cannot run."""

    exit_code = EXIT_CONVERSION


class DeviceError(ExporterError):
    """A device or transport fault during a hardware-in-the-loop run."""

    exit_code = EXIT_DEVICE
