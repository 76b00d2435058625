from dataclasses import dataclass, field

import pytest

from reprozoo.common.config import ConfigError, RunConfig, check_fraction, check_positive, ensure, parse


@dataclass
class Toy(RunConfig):
    """A toy config."""

    lr: float = 0.1
    """Learning rate."""
    sizes: list[int] = field(default_factory=lambda: [1, 2])
    """Sizes."""
    flip: float = 0.25
    """A fraction."""

    def validate(self) -> None:
        super().validate()
        check_positive(self, "lr", "sizes")
        check_fraction(self, "flip")


PRESETS = {"smoke": Toy(seeds=1, lr=1.0), "quick": Toy(seeds=3), "full": Toy(seeds=10, lr=0.01)}


def test_preset_supplies_defaults_and_flags_override():
    cfg = parse(Toy, PRESETS, ["--preset", "smoke"])
    assert (cfg.preset, cfg.seeds, cfg.lr) == ("smoke", 1, 1.0)
    cfg = parse(Toy, PRESETS, ["--preset=full", "--lr", "0.5", "--sizes", "3", "4"])
    assert (cfg.preset, cfg.seeds, cfg.lr, cfg.sizes) == ("full", 10, 0.5, [3, 4])
    assert parse(Toy, PRESETS, []).preset == "quick"
    assert cfg.seed_list() == list(range(10))


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--preset", "nope"], "--preset"),
        (["--seeds", "0"], "--seeds"),
        (["--lr", "-1"], "--lr"),
        (["--sizes", "0"], "--sizes"),
        (["--flip", "1.5"], "--flip"),
    ],
)
def test_bad_values_exit_2_naming_the_field(argv, needle, capsys):
    with pytest.raises(SystemExit) as err:
        parse(Toy, PRESETS, argv)
    assert err.value.code == 2
    assert needle in capsys.readouterr().err


def test_ensure_raises_config_error_with_flag_name():
    with pytest.raises(ConfigError, match="--my-field: bad"):
        ensure(False, "my_field", "bad")
    ensure(True, "my_field", "never raised")
