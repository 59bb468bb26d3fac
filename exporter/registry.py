"""A named registry of plugin classes (stages, targets, transports), found by entry point.

Plugins are declared as entry points of one group (`[project.entry-points."edgex.targets"]` in a
pyproject.toml: `android = "targets.android.target:AndroidTarget"`). `names()` reads the declarations
without importing any plugin; `get(name)` imports that one plugin (once); `classes()` imports them all.
Classes defined in code join with the `register` decorator. A name declared twice (two entry points,
or a class in code under a declared name) is refused, and so is an entry point whose class carries
another name than the one it is declared under.

Example:
    >>> from exporter.errors import ConfigError
    >>> STAGES = Registry("stage", key="name", group="edgex.stages", error=ConfigError)
    >>> "prune" in STAGES.names()                       # read from the metadata, nothing imported
    True
    >>> STAGES.get("prune").__name__                    # imports exporter.stages.prune only
    'PruneStage'
    >>> STAGES.get("prnue")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    exporter.errors.ConfigError: unknown stage 'prnue'. Did you mean 'prune'? Known stages: ...
"""
from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint


def _dist_name(ep: EntryPoint) -> str | None:
    """The name of the distribution declaring an entry point, or None."""
    dist = getattr(ep, "dist", None)
    return None if dist is None else dist.name


def _origin(ep: EntryPoint) -> str:
    """How to name an entry point in messages: `name = module:attr (distribution version)`."""
    dist = getattr(ep, "dist", None)
    source = f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"
    return f"{ep.name} = {ep.value} ({source})"


class Registry:
    """Plugin classes keyed by one of their class attributes, declared by entry points or in code.

    Args:
        kind: what a plugin is, for messages ("target", "stage", "device").
        key: the class attribute holding a plugin's name ("name", "scheme").
        group: the entry-point group declaring the plugins, e.g. "edgex.targets".
        error: the exception class raised for unknown names and broken declarations.
        base: "module:Class" every plugin must subclass (checked when loaded); None checks nothing.
    """

    def __init__(self, kind: str, *, key: str, group: str, error: type[Exception], base: str | None = None):
        self.kind, self.key, self.group, self.error, self.base = kind, key, group, error, base
        self._classes: dict[str, type] = {}
        self._declared: dict[str, EntryPoint] | None = None

    def declared(self) -> dict[str, EntryPoint]:
        """The group's entry points by name, read once from the installed metadata (nothing imported).

        Returns:
            Entry-point name -> `importlib.metadata.EntryPoint`.

        Raises:
            self.error: two distributions declare the same name (both are named).
        """
        if self._declared is None:
            from importlib.metadata import entry_points

            found: dict[str, EntryPoint] = {}
            for ep in entry_points(group=self.group):
                other = found.get(ep.name)
                if other is not None and (_dist_name(other), other.value) != (_dist_name(ep), ep.value):
                    raise self.error(f"{self.kind} {ep.name!r} is declared twice in entry-point group "
                                     f"{self.group}: {_origin(other)} and {_origin(ep)}; uninstall one of them")
                found.setdefault(ep.name, ep)
            self._declared = found
        return self._declared

    def register(self, cls: type) -> type:
        """Class decorator: add `cls`, defined in code, under its key attribute.

        Args:
            cls: the plugin class; its key attribute (e.g. `name`) is the name it registers under.

        Returns:
            `cls`, unchanged.

        Raises:
            TypeError: the class has no key.
            ValueError: another class, or an entry point naming another class, has the key already.
            self.error: an entry point names this class under another name.
        """
        name = getattr(cls, self.key, None)
        if not name:
            raise TypeError(f"{cls.__name__} has no {self.key}")
        if name in self._classes and self._classes[name] is not cls:
            held = self._classes[name]
            raise ValueError(f"{self.kind} {name!r} is already registered by {held.__module__}:{held.__qualname__}")
        for ep in self.declared().values():
            names_cls = (ep.module, ep.attr) == (cls.__module__, cls.__qualname__)
            if ep.name == name and not names_cls:
                raise ValueError(f"{self.kind} {name!r} is already registered by entry point {_origin(ep)}")
            if names_cls and ep.name != name:
                raise self._mismatch(ep, name)
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        """Every plugin name, declared by entry point or registered in code, sorted; imports no plugin.

        Returns:
            The names.

        Raises:
            self.error: a name declared twice (see `declared`).
        """
        return sorted(set(self.declared()) | set(self._classes))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._classes or name in self.declared())

    def get(self, name: str, *, shown: str | None = None, hint: str | None = None) -> type:
        """The class registered as `name`, importing its plugin module on first use.

        Args:
            name: the key.
            shown: how to name what the user asked for in the message (default: `name`).
            hint: what to list instead of the known keys.

        Returns:
            The plugin class.

        Raises:
            self.error: unknown key (with the nearest match and the known keys), or a declaration
                that does not load, names no class of the right kind, or names one with another key.
        """
        if name in self._classes:
            return self._classes[name]
        ep = self.declared().get(name) if isinstance(name, str) else None
        if ep is None:
            raise self._unknown(name, shown, hint)
        cls = self._load(ep)
        self._classes[name] = cls
        return cls

    def classes(self) -> list[type]:
        """Every plugin class, sorted by name; imports every plugin module.

        Returns:
            The classes.

        Raises:
            self.error: as `get`, for the first declaration that is broken.
        """
        return [self.get(name) for name in self.names()]

    def _unknown(self, name: object, shown: str | None, hint: str | None) -> Exception:
        """The error for a name nothing declares: the nearest match, the known names (or `hint`)."""
        known = self.names()
        near = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        guess = f" Did you mean {near[0]!r}?" if near else ""
        listed = hint or f"Known {self.kind}s: {', '.join(known) or 'none'}"
        if not self.declared():     # metadata without the group: an old install of a checkout
            listed += f" (no entry point in group {self.group}: is edgex installed? `pip install --no-deps -e .`)"
        return self.error(f"unknown {self.kind} {shown or name!r}.{guess} {listed}")

    def _load(self, ep: EntryPoint) -> type:
        """Import the class an entry point names and check it is a plugin called `ep.name`."""
        try:
            cls = ep.load()
        except (ImportError, AttributeError) as exc:
            raise self.error(f"{self.kind} {ep.name!r} does not load: entry point {_origin(ep)}: "
                             f"{type(exc).__name__}: {exc}") from exc
        base = self._base()
        if not isinstance(cls, type) or (base is not None and not issubclass(cls, base)):
            what = f"a subclass of {self.base}" if base is not None else "a class"
            raise self.error(f"entry point {_origin(ep)} in group {self.group} names {cls!r}, not {what}")
        if getattr(cls, self.key, None) != ep.name:
            raise self._mismatch(ep, getattr(cls, self.key, None))
        held = self._classes.get(ep.name)
        if held is not None and held is not cls:
            raise self.error(f"{self.kind} {ep.name!r} is already registered by {held.__module__}:{held.__qualname__}; "
                             f"entry point {_origin(ep)} names another class")
        return cls

    def _base(self) -> type | None:
        """The class plugins must subclass, or None."""
        if self.base is None:
            return None
        module, _, attr = self.base.partition(":")
        return getattr(importlib.import_module(module), attr)

    def _mismatch(self, ep: EntryPoint, actual: object) -> Exception:
        """The error for an entry point whose class carries another key than the entry-point name."""
        return self.error(f"entry point {_origin(ep)} in group {self.group} names a {self.kind} whose "
                          f"{self.key} is {actual!r}: the entry-point name and the class's {self.key} must be the same")
