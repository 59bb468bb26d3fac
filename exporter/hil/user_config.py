"""edgex's own settings for this user: `$XDG_CONFIG_HOME/edgex/config.yaml` (default ~/.config/edgex/).

Only what a device run needs to remember between runs: LiteRT's `benchmark_model` per Android ABI,
so that `edgex hil run --device adb://SERIAL` finds the tool for the phone it meets without
`--benchmark-binary` each time. Written by `edgex hil config --benchmark-binary ABI=PATH`
(atomically, paths made absolute); read with the strict YAML loader of profiles; an unknown key
or ABI is refused (exit 2) naming the file.

    benchmark_binary:
      arm64-v8a: /home/me/tools/android_aarch64_benchmark_model
      armeabi-v7a: /home/me/tools/android_arm_benchmark_model

Example:
    >>> _ = Path("android_aarch64_benchmark_model").write_text("#!/system/bin/sh\\n")   # a stand-in (a #! script)
    >>> path = set_benchmark_binary("arm64-v8a", "android_aarch64_benchmark_model")
    >>> benchmark_binary_for(["arm64-v8a", "armeabi-v7a"]) == Path("android_aarch64_benchmark_model").resolve()
    True
    >>> benchmark_binary_for(["x86_64"]) is None
    True
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from exporter.errors import ConfigError, UsageError
from exporter.option_names import option

ABIS = ("arm64-v8a", "armeabi-v7a", "armeabi", "x86_64", "x86", "riscv64")
Abi = Literal["arm64-v8a", "armeabi-v7a", "armeabi", "x86_64", "x86", "riscv64"]


def config_path() -> Path:
    """The config file: `$XDG_CONFIG_HOME/edgex/config.yaml`, else `~/.config/edgex/config.yaml`."""
    base = os.environ.get("XDG_CONFIG_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"   # the XDG spec ignores relative paths
    return root / "edgex" / "config.yaml"


def _model():
    from pydantic import BaseModel, ConfigDict, Field

    class UserConfig(BaseModel):
        """The config file's keys."""

        model_config = ConfigDict(extra="forbid")
        benchmark_binary: dict[Abi, str] = Field(default_factory=dict,
                                                 description="LiteRT benchmark_model per Android ABI")

    return UserConfig


def read_config() -> dict:
    """The config as a dict ({} when there is no file).

    Raises:
        ConfigError: not a regular file, not plain YAML, an unknown key or ABI (exit 2), naming the file.
    """
    from pydantic import ValidationError

    from exporter.safe_read import load_yaml_file
    from exporter.validation import validation_lines

    path = config_path()
    if not path.exists():
        return {}
    data = load_yaml_file(path, what="edgex config", limit=64 << 10)
    try:
        return _model().model_validate(data or {}).model_dump()
    except ValidationError as exc:
        raise ConfigError(f"{path}: " + "; ".join(validation_lines(exc, "edgex config"))) from None


def _write(data: dict) -> Path:
    """Write the config atomically (temp file in the same folder, then rename)."""
    import yaml

    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("# edgex settings, written by `edgex hil config`\n")
            yaml.safe_dump(data, fh, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def set_benchmark_binary(abi: str, binary) -> Path:
    """Remember `binary` as the benchmark_model for phones of `abi`; return the config file.

    The file must exist and be an executable for that ABI (an ELF of its machine, or a #! script).

    Raises:
        UsageError: an unknown ABI, or a file that is not such an executable (exit 2).
        ConfigError: the existing config is invalid.
    """
    from exporter.hil.benchmark_binary import check_binary

    if abi not in ABIS:
        raise UsageError(f"{option('benchmark_binary')} {abi}=...: unknown ABI; known: {', '.join(ABIS)}")
    binary = Path(binary).resolve()
    check_binary(binary, [abi])
    data = read_config()
    data.setdefault("benchmark_binary", {})[abi] = str(binary)
    try:
        return _write(data)
    except OSError as exc:
        raise UsageError(f"cannot write {config_path()}: {exc.strerror or exc}") from None


def benchmark_binary_for(abis: list[str]) -> Path | None:
    """The remembered benchmark_model for the first of a phone's ABIs that has one (None: none)."""
    table = read_config().get("benchmark_binary", {})
    return next((Path(table[abi]) for abi in abis if abi in table), None)
