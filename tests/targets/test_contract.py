"""Contract tests every registered Target runs: class attributes, typed profile sections and options,
and `measure` -> `Measured` -> `extra_checks` / `package` on a real int8 model."""
import typing

import pytest
from pydantic import BaseModel

from exporter.analysis.graph import Graph
from exporter.checks import Check, Measurement
from exporter.errors import UsageError
from exporter.profile import DeviceProfile, list_profiles, load_profile
from targets.base import TARGETS, Artifacts, Measured, Target, TargetOptions, all_targets, get_target, register

TARGET_NAMES = [t.name for t in all_targets()]
RESERVED = {"model.tflite", "manifest.json", "report.md", "report.html", "labels.txt"}


def _strict_and_documented(model: type[BaseModel]) -> None:
    assert issubclass(model, BaseModel), model
    assert model.model_config.get("extra") == "forbid", f"{model.__name__} must refuse unknown keys"
    for field, info in model.model_fields.items():
        assert info.description, f"{model.__name__}.{field} has no description"
        hint = typing.get_type_hints(model)[field]
        assert hint is not dict and typing.get_origin(hint) is not dict, f"{model.__name__}.{field} is a free dict"


def test_the_documented_targets_are_registered():
    assert set(TARGET_NAMES) == {"android", "linux", "microcontroller", "ethos-u", "edgetpu"}


def test_duplicate_target_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        @register
        class Fake(Target):  # noqa: F811
            name = "android"

            def measure(self, artifacts):
                return Measured({})


@pytest.mark.parametrize("name", TARGET_NAMES)
class TestTargetContract:
    def test_class_attributes(self, name):
        target = get_target(name)
        assert isinstance(target, Target) and TARGETS.get(name) is type(target)
        assert target.name == name and target.summary and target.runtime
        assert target.ram_source and target.latency_source
        assert target.default_recipe().stages == ()

    def test_default_profile_exists_and_is_for_it(self, name):
        target = get_target(name)
        profile = load_profile(target.default_profile)
        assert profile.target == name
        assert target.policy(profile).resolve(None) == profile.quantization.preferred
        row = target.supports()
        assert row["target"] == name and target.default_profile in row["profiles"]

    def test_sections_are_strict_typed_models(self, name):
        target = get_target(name)
        assert isinstance(target.sections, dict)
        for key, model in target.sections.items():
            assert key.isidentifier() and key not in DeviceProfile.model_fields
            _strict_and_documented(model)
        for profile in (p for p in list_profiles() if p.target == name):
            assert profile.sections == target.sections
            for key, model in target.sections.items():
                assert isinstance(profile.section(key), model), f"{profile.name} lacks its {key!r} section"

    def test_options_are_strict_and_documented(self, name):
        target = get_target(name)
        assert issubclass(target.Options, TargetOptions)
        _strict_and_documented(target.Options)
        assert isinstance(target.parse_options(None), target.Options)
        with pytest.raises(UsageError, match="no_such_option: unknown key"):
            target.parse_options({"no_such_option": True})

    def test_measure_returns_measured_that_extra_checks_and_package_take(self, name, demo_bundle):
        _, out = demo_bundle                       # the demo as int8 with int8 I/O
        target, tflite = get_target(name), (out / "model.tflite").read_bytes()
        profile = load_profile(target.default_profile)
        artifacts = Artifacts(tflite=tflite, graph=Graph.from_bytes(tflite), profile=profile, mode="int8",
                              source="digits.keras")
        measured = target.measure(artifacts)
        assert isinstance(measured, Measured)
        assert measured.figures["model_size"].value == len(tflite)
        for key, figure in measured.figures.items():
            assert isinstance(figure, Measurement) and figure.name == key
            assert figure.source in ("measured", "estimated", "mixed")
        assert {"latency", "ram"} <= set(measured.figures)
        assert all(isinstance(c, Check) for c in target.extra_checks(artifacts, measured))
        files = target.package(artifacts, measured)
        assert isinstance(files, dict) and not RESERVED & set(files)
        for path, data in files.items():
            assert isinstance(data, bytes) and not path.startswith("/") and ".." not in path.split("/")
