"""The plugin registry: entry points read without importing, one plugin loaded on demand, duplicates,
misnamed and broken declarations refused; the built-in groups; `local` imports no SSH library."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exporter.errors import ConfigError, UsageError
from exporter.hil.transports.base import TRANSPORTS
from exporter.registry import Registry
from exporter.stages.base import STAGES
from targets.base import TARGETS

GROUP = "edgex.test_plugins"
BASE = "tests.test_registry:Plugin"
BUILTINS = {
    TARGETS: {"android", "edgetpu", "ethos-u", "linux", "microcontroller"},
    STAGES: {"cluster", "distill", "lowbit", "prune", "qat", "sparsify"},
    TRANSPORTS: {"adb", "local", "serial", "ssh"},
}


class Plugin:
    """The base class the throwaway plugins of these tests subclass."""

    name = ""


def add_distribution(root: Path, dist: str, entries: dict[str, str], modules: dict[str, str]) -> None:
    """Write an installed-looking distribution under `root`: its modules and a dist-info declaring `entries`."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entries.items())
    (info / "entry_points.txt").write_text(f"[{GROUP}]\n{lines}")


PLUGINS = """
    from tests.test_registry import Plugin

    class One(Plugin):
        name = "one"

    class Misnamed(Plugin):
        name = "something-else"

    class NotAPlugin:
        name = "stray"
"""


@pytest.fixture()
def plugin_path(tmp_path, monkeypatch):
    """A fresh sys.path entry for throwaway distributions; their modules are forgotten afterwards."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("regtest_"):
            del sys.modules[name]


def registry() -> Registry:
    return Registry("widget", key="name", group=GROUP, base=BASE, error=UsageError)


def test_names_read_the_declarations_and_get_imports_only_that_plugin(plugin_path):
    add_distribution(plugin_path, "regtest_a", {"one": "regtest_a_one:One", "two": "regtest_a_two:Two"},
                     {"regtest_a_one": PLUGINS, "regtest_a_two": "raise RuntimeError('imported')\n"})
    reg = registry()
    assert reg.names() == ["one", "two"] and "one" in reg and "three" not in reg
    assert "regtest_a_one" not in sys.modules and "regtest_a_two" not in sys.modules
    cls = reg.get("one")
    assert cls.__name__ == "One" and reg.get("one") is cls          # cached: loaded once
    assert "regtest_a_one" in sys.modules and "regtest_a_two" not in sys.modules


def test_unknown_name_gives_the_nearest_and_the_known_ones(plugin_path):
    add_distribution(plugin_path, "regtest_b", {"one": "regtest_b_one:One"}, {"regtest_b_one": PLUGINS})
    with pytest.raises(UsageError, match=r"unknown widget 'oen'\. Did you mean 'one'\? Known widgets: one"):
        registry().get("oen")
    with pytest.raises(UsageError, match=r"unknown widget 'zzz'\. Use one of: one$"):
        registry().get("zzz", hint="Use one of: one")


def test_an_empty_group_says_how_to_declare_plugins():
    with pytest.raises(UsageError, match=r"Known widgets: none \(no entry point in group edgex.test_plugins: is edgex"):
        registry().get("one")


def test_two_distributions_declaring_one_name_are_refused_naming_both(plugin_path):
    add_distribution(plugin_path, "regtest_c1", {"one": "regtest_c1:One"}, {"regtest_c1": PLUGINS})
    add_distribution(plugin_path, "regtest_c2", {"one": "regtest_c1:One"}, {})     # even the same class
    with pytest.raises(UsageError, match="widget 'one' is declared twice") as info:
        registry().names()
    assert "regtest_c1 0.1" in str(info.value) and "regtest_c2 0.1" in str(info.value)


@pytest.mark.parametrize("value, message", [
    ("regtest_d:Misnamed", r"names a widget whose name is 'something-else'"),
    ("regtest_d:NotAPlugin", r"names <class 'regtest_d\.NotAPlugin'>, not a subclass of tests.test_registry:Plugin"),
    ("regtest_d:Nowhere", r"widget 'one' does not load: .*AttributeError"),
    ("regtest_missing:One", r"widget 'one' does not load: .*No module named 'regtest_missing'"),
])
def test_a_broken_declaration_is_refused_naming_the_entry_point(plugin_path, value, message):
    add_distribution(plugin_path, "regtest_d", {"one": value}, {"regtest_d": PLUGINS})
    with pytest.raises(UsageError, match=message) as info:
        registry().get("one")
    assert f"one = {value} (regtest_d 0.1)" in str(info.value)


def test_classes_registered_in_code_join_the_declared_ones(plugin_path):
    add_distribution(plugin_path, "regtest_e", {"one": "regtest_e:One"}, {"regtest_e": PLUGINS})
    reg = registry()

    @reg.register
    class Local(Plugin):
        name = "local-one"

    assert reg.names() == ["local-one", "one"] and reg.get("local-one") is Local
    with pytest.raises(ValueError, match=r"widget 'one' is already registered by entry point one = regtest_e:One"):
        @reg.register
        class Clash(Plugin):  # noqa: F811
            name = "one"
    with pytest.raises(ValueError, match="already registered by tests.test_registry"):
        @reg.register
        class Again(Plugin):  # noqa: F811
            name = "local-one"
    with pytest.raises(TypeError, match="has no name"):
        reg.register(Plugin)
    assert [c.__name__ for c in reg.classes()] == ["Local", "One"]


@pytest.mark.parametrize("reg", list(BUILTINS), ids=lambda r: r.group)
def test_every_builtin_is_declared_by_an_entry_point_of_its_own_name(reg):
    declared = reg.declared()
    assert BUILTINS[reg] <= set(declared), "re-install: pip install --no-deps --no-build-isolation -e ."
    for name in BUILTINS[reg]:
        assert getattr(reg.get(name), reg.key) == name
        assert declared[name].dist.name == "edge-exporter"


def test_no_builtin_module_tuples_remain():
    import exporter.hil.transports.base as transports
    import exporter.stages.base as stages
    import targets.base as targets

    for module in (targets, stages, transports):
        assert not [n for n in vars(module) if n.startswith("BUILTIN_")], module.__name__


def test_an_unknown_stage_is_a_config_error():
    with pytest.raises(ConfigError, match="Did you mean 'prune'"):
        STAGES.get("prnue")


def _python(code: str) -> list:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return eval(proc.stdout.strip().splitlines()[-1])  # noqa: S307 (our own repr of a list)


def test_listing_names_imports_no_plugin_and_get_imports_one():
    plugins = sorted({ep.module for reg in BUILTINS for ep in reg.declared().values()})
    loaded = _python(
        "import sys\n"
        "from targets.base import TARGETS, get_target\n"
        "from exporter.stages.base import STAGES\n"
        "from exporter.hil.transports.base import TRANSPORTS\n"
        "names = TARGETS.names() + STAGES.names() + TRANSPORTS.names()\n"
        f"before = [m for m in {plugins!r} if m in sys.modules]\n"
        "get_target('linux')\n"
        f"print([len(names), before, [m for m in {plugins!r} if m in sys.modules]])")
    assert loaded == [sum(map(len, BUILTINS.values())), [], ["targets.linux.target"]]


def test_a_local_device_imports_no_ssh_adb_or_serial_library():
    loaded = _python(
        "import sys\n"
        "import exporter.hil.cli, exporter.hil.runner\n"
        "from exporter.hil.transports.base import TransportOptions, open_transport\n"
        "with open_transport('local', TransportOptions(python=sys.executable)) as t:\n"
        "    t.describe()\n"
        "print([m for m in ('paramiko', 'adbutils', 'serial') if m in sys.modules])")
    assert loaded == []


def test_cli_import_stays_light():
    assert _python("import sys; from exporter import cli; "
                   "print([m for m in ('tensorflow', 'pydantic', 'rich', 'paramiko') if m in sys.modules])") == []
