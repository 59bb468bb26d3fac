import pytest

from exporter.errors import ConfigError
from exporter.profile import PROFILE_DIR, list_profiles, load_profile, parse_limit_overrides

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


def test_unknown_key_names_file_and_path(tmp_path):
    path = write(tmp_path, GOOD.replace("  latency: 33ms", "  latncy: 33ms"))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert "limits.latncy" in str(err.value) and str(path) in str(err.value) and "unknown key" in str(err.value)


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


def test_python_yaml_tags_are_refused(tmp_path):
    path = write(tmp_path, "target: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError):
        load_profile(path)
    assert not (tmp_path / "pwned").exists()


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
