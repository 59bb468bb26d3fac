"""A named registry of plugin classes (stages, targets, transports) that refuses duplicates.

Built-in plugins live in modules imported on first lookup, so importing a registry stays cheap.

Example:
    >>> STAGES = Registry("stage", key="name", modules=("exporter.stages.prune",), error=ConfigError)
    >>> @STAGES.register
    ... class Prune(Stage): name = "prune"
    >>> STAGES.get("prnue")      # ConfigError: unknown stage 'prnue'. Did you mean 'prune'? ...
"""
from __future__ import annotations

import difflib
import importlib


class Registry:
    """Classes keyed by one of their class attributes."""

    def __init__(self, kind: str, *, key: str, modules: tuple[str, ...], error: type[Exception]):
        self.kind, self.key, self.modules, self.error = kind, key, modules, error
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> type:
        """Class decorator: add `cls` under its key attribute.

        Raises:
            TypeError: the class has no key. ValueError: another class has the key already.
        """
        name = getattr(cls, self.key, None)
        if not name:
            raise TypeError(f"{cls.__name__} has no {self.key}")
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"{self.kind} {name!r} is already registered by {self._classes[name].__name__}")
        self._classes[name] = cls
        return cls

    def _load(self) -> None:
        for module in self.modules:
            importlib.import_module(module)

    def names(self) -> list[str]:
        """Every registered key, sorted (built-ins loaded)."""
        self._load()
        return sorted(self._classes)

    def get(self, name: str, *, shown: str | None = None, hint: str | None = None) -> type:
        """The class registered as `name`.

        Args:
            name: the key.
            shown: how to name what the user asked for in the message (default: `name`).
            hint: what to list instead of the known keys.

        Raises:
            self.error: unknown key, with the nearest match and the known keys.
        """
        self._load()
        if name not in self._classes:
            near = difflib.get_close_matches(name, list(self._classes), n=1)
            guess = f" Did you mean {near[0]!r}?" if near else ""
            known = hint or f"Known {self.kind}s: {', '.join(self.names())}"
            raise self.error(f"unknown {self.kind} {shown or name!r}.{guess} {known}")
        return self._classes[name]
