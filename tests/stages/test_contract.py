"""Contract tests every registered Stage (and Target) runs: strict configs, registry, round trips."""
import pytest

from exporter.errors import ConfigError, UsageError
from exporter.profile import load_profile
from exporter.stages.base import Family, Stage, StageConfig, get_stage, register, stage_names
from targets.base import Target, all_targets

MINIMAL = {"prune": {"sparsity": 0.5}, "sparsify": {}, "cluster": {"clusters": 8}, "qat": {},
           "lowbit": {"bits": 4}, "distill": {"width": 0.5}}


def test_the_documented_stages_are_registered():
    assert set(stage_names()) == set(MINIMAL)


@pytest.mark.parametrize("name", sorted(MINIMAL))
class TestStageContract:
    def test_config_is_strict_and_documented(self, name):
        cls = get_stage(name)
        assert issubclass(cls.Config, StageConfig) and cls.Config.model_config["extra"] == "forbid"
        for field, info in cls.Config.model_fields.items():
            assert info.description, f"{name}.{field} has no description"
        with pytest.raises(ConfigError, match="unknown key"):
            cls({**MINIMAL[name], "no_such_key": 1})

    def test_spec_round_trips(self, name):
        stage = get_stage(name)(MINIMAL[name])
        again = get_stage(stage.to_spec()["type"])(stage.to_spec()["config"])
        assert again.config == stage.config

    def test_class_attributes(self, name):
        cls = get_stage(name)
        assert cls.name == name and isinstance(cls.family, Family)

    def test_int8_only_stages_refuse_float_modes(self, name):
        stage = get_stage(name)(MINIMAL[name])
        profile = load_profile("android-arm64-midrange")
        if stage.int8_only:
            with pytest.raises(UsageError, match="int8"):
                stage.check_profile(profile, "float16", ["prune", "cluster"])
        else:
            stage.check_profile(profile, "float16", [])


def test_duplicate_stage_names_are_refused():
    with pytest.raises(ValueError, match="already registered"):
        @register
        class Fake(Stage):  # noqa: F811
            name = "prune"
            Config = StageConfig
            family = Family.PRUNE

            def apply(self, model, ctx):
                return None


@pytest.mark.parametrize("target", all_targets(), ids=lambda t: t.name)
def test_target_contract(target):
    assert isinstance(target, Target) and target.name and target.summary and target.runtime
    profile = load_profile(target.default_profile)
    assert profile.target == target.name
    policy = target.policy(profile)
    assert policy.resolve(None) == profile.quantization.preferred
    assert target.default_recipe().stages == ()
    row = target.supports()
    assert target.default_profile in row["profiles"]


def _float_fields(config_cls):
    return [name for name, info in config_cls.model_fields.items() if "float" in str(info.annotation)]


@pytest.mark.parametrize("name", sorted(MINIMAL))
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_every_float_field_refuses_nan_and_infinity(name, value):
    """StageConfig's allow_inf_nan=False: what made the recipe's NaN/Inf walk unnecessary."""
    cls = get_stage(name)
    for field in _float_fields(cls.Config):
        with pytest.raises(ConfigError, match=rf"stage '{name}': {field}: Input should be a finite number"):
            cls({**MINIMAL[name], field: value})


def test_training_config_refuses_nan_and_infinity():
    from pydantic import ValidationError

    from exporter.stages.training import TrainingConfig

    assert _float_fields(TrainingConfig) == ["learning_rate", "validation_split"]
    for field in _float_fields(TrainingConfig):
        with pytest.raises(ValidationError, match="finite number"):
            TrainingConfig.model_validate({field: float("nan")})
