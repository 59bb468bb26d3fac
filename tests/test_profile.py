import math
import os
import time
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from exporter.cli import main
from exporter.errors import ConfigError
from exporter.profile import (PROFILE_DIR, DeviceProfile, list_profiles, load_profile, parse_limit_overrides,
                              profile_class, target_names)
from targets.edgetpu.settings import EdgeTpuSettings

GOOD = (PROFILE_DIR / "android-arm64-midrange.yaml").read_text()


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_profiles_validate_and_comment_every_figure():
    names = {p.name for p in list_profiles()}
    assert {"android-arm64-midrange", "android-arm64-lowend"} <= names
    for path in PROFILE_DIR.glob("*.yaml"):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            stripped = line.strip()
            is_figure = ":" in stripped and not stripped.startswith("#") and stripped.split(":")[1].strip()[:1].isdigit()
            if is_figure:
                assert lines[i - 1].strip().startswith("#") or "#" in line, f"{path.name}:{i + 1} has no source comment"


def test_midrange_is_android_default():
    p = load_profile("android-arm64-midrange")
    assert p.target == "android" and p.quantization.preferred == "int8"
    assert p.limits.model_size == 50e6 and p.limits.latency == 33


@pytest.mark.reliability(7)
def test_unknown_key_names_file_and_path(tmp_path):
    path = write(tmp_path, GOOD.replace("  latency: 33ms", "  latncy: 33ms"))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert "limits.latncy" in str(err.value) and str(path) in str(err.value) and "unknown key" in str(err.value)


@pytest.mark.reliability(8)
@pytest.mark.parametrize("old,new,field", [
    ("  ram: 256MiB", "  ram: -5", "limits.ram"),
    ("  ram: 256MiB", "  ram: lots", "limits.ram"),
    ("  int8_gmacs: 10.0", "  int8_gmacs: fast", "cost_model.int8_gmacs"),
    ("  preferred: int8", "  preferred: int4", "quantization.preferred"),
    ("  int8_io: int8", "  int8_io: int3", "quantization.int8_io"),
])
def test_wrong_values_name_the_field(tmp_path, old, new, field):
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        load_profile(write(tmp_path, GOOD.replace(old, new)))
    assert field in str(err.value)


@pytest.mark.reliability(9)
def test_python_yaml_tags_are_refused(tmp_path):
    path = write(tmp_path, "target: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError):
        load_profile(path)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.reliability(10)
def test_unknown_profile_suggests_nearest():
    with pytest.raises(ConfigError) as err:
        load_profile("android-arm64-midrang")
    assert "Did you mean 'android-arm64-midrange'" in str(err.value)


def test_limit_overrides():
    assert parse_limit_overrides(["model_size=1KB", "latency=12ms", "accuracy_drop=0.5"]) == {
        "model_size": 1000, "latency": 12, "accuracy_drop": 0.5}
    for bad in (["size=1KB"], ["model_size"], ["latency=12KB"], ["ram=-1"]):
        with pytest.raises(ConfigError):
            parse_limit_overrides(bad)


# --- issue 9: strict YAML, bounded reads, typed sections, finite numbers --------------------------

CORAL = (PROFILE_DIR / "coral-usb.yaml").read_text()


def billion_laughs(levels: int = 9) -> str:
    """The classic alias bomb: 10**levels strings from a few lines of YAML."""
    lines = ['  lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"  lol{i}: &lol{i} [" + ", ".join([f"*lol{i - 1}"] * 10) + "]")
    return "\n".join(lines) + f"\n  interface: *lol{levels}\n"


@pytest.mark.reliability(39)
def test_alias_bomb_is_refused_quickly_naming_file_and_line(tmp_path, capsys):
    text = CORAL.replace('  interface: "USB 3.0"\n', billion_laughs())
    assert len(text.encode()) < 6000
    path = write(tmp_path, text)
    start = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert time.monotonic() - start < 2
    line = text.splitlines().index(next(x for x in text.splitlines() if "&lol0" in x)) + 1
    assert f"{path}, line {line}" in str(err.value) and "anchors and aliases" in str(err.value)
    assert main(["profiles", "show", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1          # one line


@pytest.mark.reliability(39)
@pytest.mark.parametrize("text,message", [
    ("target: &t android\ndevice: *t\n", "anchors and aliases"),
    ("limits:\n  latency: 33ms\n  latency: 12ms\n", "duplicate key 'latency' (first on line 2)"),
    ("notes: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than"),
    ("target: android\nthreads: 1" + "0" * 5000 + "\n", "line 2: cannot read this value: Exceeds the limit"),
    ("notes: 2001-13-45\n", "line 1: cannot read this value: month must be in 1..12"),
    ("notes: !!int abc\n", "line 1: cannot read this value"),
])
def test_strict_yaml_constructs_are_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_profile(write(tmp_path, text))


def test_undecodable_and_oversized_profiles_exit_2(tmp_path, capsys):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(GOOD.encode() + b"notes: caf\xe9\n")
    assert main(["profiles", "show", str(bad)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    big = write(tmp_path, GOOD + ("# padding\n" * 120_000), name="big.yaml")
    with pytest.raises(ConfigError, match="larger than"):
        load_profile(big)


@pytest.mark.reliability(40)
@pytest.mark.timeout(20)
def test_fifo_and_device_profiles_are_refused_without_hanging(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="regular file, not a FIFO"):
        load_profile(fifo)
    with pytest.raises(ConfigError, match="regular file, not a device"):
        load_profile("/dev/zero")
    with pytest.raises(ConfigError, match="regular file, not a directory"):
        load_profile(tmp_path)


@pytest.mark.reliability(7, 39)
def test_edgetpu_section_is_typed_and_checked_at_load(tmp_path, capsys):
    assert isinstance(load_profile("coral-usb").section("edgetpu"), EdgeTpuSettings)
    path = write(tmp_path, CORAL.replace("  invoke_overhead_us: 200", "  invoke_overhed_us: 200"))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and "edgetpu.invoke_overhed_us: unknown key" in str(err.value)
    assert main(["profiles", "show", str(path)]) == 2
    assert "edgetpu.invoke_overhed_us" in capsys.readouterr().err


def _models(model: type[BaseModel]):
    yield model
    for field in model.model_fields.values():
        for arg in typing.get_args(field.annotation) or (field.annotation,):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from _models(arg)


@pytest.mark.reliability(39)
def test_every_section_is_a_strict_typed_model_with_finite_floats():
    for model in {m for target in target_names() for m in _models(profile_class(target))}:
        assert model.model_config.get("extra") == "forbid", model.__name__
        hints = typing.get_type_hints(model, include_extras=True)
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            args = typing.get_args(hints[name]) if typing.get_origin(hints[name]) is typing.Union else (hints[name],)
            assert not any(a is dict or typing.get_origin(a) is dict or a is typing.Any for a in args), \
                f"{model.__name__}.{name} is a free dict"
            assert float not in args, f"{model.__name__}.{name} is a bare float (use FiniteFloat)"


@pytest.mark.reliability(8)
@pytest.mark.parametrize("old,new,field", [
    ("  latency: 33ms", "  latency: .inf", "limits.latency"),
    ("  latency: 33ms", "  latency: .nan", "limits.latency"),
    ("  latency: 33ms", "  latency: 1e400", "limits.latency"),
    ("  latency: 33ms", "  latency: 1.0e+400", "limits.latency"),
    ("  latency: 33ms", "  latency: -.inf", "limits.latency"),
    ("  latency: 33ms", "  latency: -3", "limits.latency"),
    ("  per_op_overhead_us: 8", "  per_op_overhead_us: .inf", "cost_model.per_op_overhead_us"),
    ("  tpu_peak_gmacs: 2000", "  tpu_peak_gmacs: .inf", "edgetpu.tpu_peak_gmacs"),
])
def test_infinite_and_nan_numbers_are_refused(tmp_path, old, new, field):
    assert old in CORAL
    with pytest.raises(ConfigError) as err:
        load_profile(write(tmp_path, CORAL.replace(old, new)))
    assert field in str(err.value)


@pytest.mark.parametrize("items", [["latency=1e400"], ["model_size=1e308GB"], {"latency": math.inf},
                                   {"ram": math.nan}, ["latency=inf"], ["latency=nan"]])
def test_infinite_limit_overrides_are_refused(items):
    with pytest.raises(ConfigError) as err:
        parse_limit_overrides(items)
    assert next(iter(items)).split("=")[0] in str(err.value)


def test_with_limits_validates(tmp_path, capsys):
    profile = load_profile("coral-usb")
    with pytest.raises(ConfigError, match="limits.accuracy_drop"):
        profile.with_limits({"accuracy_drop": 150})
    assert profile.with_limits({"latency": 12.0}).limits.latency == 12
    assert main(["export", "--demo", "--target", "edgetpu", "--limit", "latency=1e400", "--out",
                 str(tmp_path / "out")]) == 2
    assert "latency" in capsys.readouterr().err and not (tmp_path / "out").exists()


@pytest.mark.reliability(42)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=":-[]{}&*!|>'\"#%@`,? \n\t0123456789.eE+_abcxyz\xe9/", max_size=200)
       | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_fuzzed_yaml_gives_config_errors(tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        load_profile(path)
    except ConfigError:
        pass


def test_a_calibrated_profile_keeps_its_nulls(tmp_path):
    """`toolchain: null` (no compiler for the ESP32-S3 here) must survive a calibration round trip."""
    from exporter.calibrate import Calibration
    from exporter.profile import load_profile

    profile = load_profile("esp32-s3")
    path = tmp_path / "esp32-s3.calibrated.yaml"
    path.write_text(Calibration(profile, [], "scale", 10.0, 1.0).to_yaml())
    assert load_profile(path).section("microcontroller").toolchain is None


# --- issue 10: sections belong to targets ---------------------------------------------------------

@pytest.mark.parametrize("profile", list_profiles(), ids=lambda p: p.name)
def test_every_shipped_profile_round_trips(profile, tmp_path):
    """What the manifest stores (`model_dump(mode="json")`, sections at top level) validates to an equal profile,
    and so does the YAML that `profiles calibrate` writes from it."""
    import yaml

    data = profile.model_dump(mode="json")
    assert set(data) == set(DeviceProfile.model_fields) | set(profile.sections)
    assert DeviceProfile.model_validate(data) == profile
    path = write(tmp_path, yaml.safe_dump(data, sort_keys=False), name=f"{profile.name}.yaml")
    assert load_profile(path) == profile


def test_a_section_the_target_does_not_take_is_refused_naming_its_sections(tmp_path):
    path = write(tmp_path, GOOD + "edgetpu:\n  interface: USB 3.0\n")
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert f"{path}: profile p: edgetpu: unknown key" in str(err.value)
    assert "target 'android'; its sections: none" in str(err.value)
    mcu = (PROFILE_DIR / "arduino-nano-33-ble.yaml").read_text()
    with pytest.raises(ConfigError, match="target 'microcontroller'; its sections: microcontroller"):
        load_profile(write(tmp_path, mcu + "ethos_u: {}\n", name="m.yaml"))
    with pytest.raises(ConfigError, match="which takes no 'edgetpu' section"):
        load_profile("arduino-nano-33-ble").section("edgetpu")


def test_unknown_target_is_refused_at_load(tmp_path):
    with pytest.raises(ConfigError, match="target: unknown target 'androd'. Did you mean 'android'"):
        load_profile(write(tmp_path, GOOD.replace("target: android", "target: androd")))


def test_profiles_saved_before_sections_moved_to_targets_still_validate():
    """Older manifests list every section, null where absent; a non-null foreign section is still refused."""
    from exporter.profile import DeviceProfile, load_profile

    data = load_profile("android-arm64-midrange").model_dump(mode="json")
    old = {**data, "microcontroller": None, "ethos_u": None, "edgetpu": None}
    assert DeviceProfile.model_validate(old) == load_profile("android-arm64-midrange")
    with pytest.raises(Exception, match="edgetpu"):
        DeviceProfile.model_validate({**data, "edgetpu": {}})
