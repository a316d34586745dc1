"""ExperimentConfig / SweepConfig: round trips, dotted overrides, trial ids, and bad configs named by key.
No training here: everything runs in well under a second per test."""

import pytest

from synthsae.errors import ConfigError
from synthsae.experiments.config import ExperimentConfig, parse_value, set_dotted
from synthsae.experiments.sweep import SweepConfig
from synthsae.world import WorldConfig

CONFIGS = pytest.importorskip("pathlib").Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_load_and_round_trip(path):
    text = path.read_text()
    cls = SweepConfig if "[sweep" in text else ExperimentConfig
    config = cls.load(path)
    assert cls.from_toml(config.to_toml()) == config
    assert cls.from_json(config.to_json()) == config


def test_full_world_table_and_preset_overrides():
    preset = ExperimentConfig.from_toml('[world]\npreset = "toy"\nseed = 3\nm = 64\n[world.firing]\nmax_p = 0.2\n'
                                        '[[sae]]\nvariant = "topk"\nk = 4\n')
    wc = preset.world_config()
    assert (wc.seed, wc.m, wc.firing.kind, wc.firing.max_p) == (3, 64, "zipf", 0.2)
    assert preset.sae_configs()["topk"].m == 64  # m defaults to the world's m
    full = ExperimentConfig.from_dict({"world": WorldConfig(d=16, m=40).to_dict(), "sae": [{"variant": "topk", "k": 2}]})
    assert full.world.preset is None and full.world_config() == WorldConfig(d=16, m=40)
    assert ExperimentConfig.from_toml(full.to_toml()) == full
    # a nested table naming another kind replaces the preset's table instead of merging into it
    other = preset.with_overrides({"world.firing": {"kind": "constant", "p": 0.05}}).world_config()
    assert other.firing.kind == "constant" and other.firing.p == 0.05


def test_seeds_flow_to_sae_and_training():
    c = ExperimentConfig.from_toml('seed = 7\n[[sae]]\nvariant = "topk"\n[[sae]]\nvariant = "relu_l1"\nseed = 2\n')
    configs = c.sae_configs()
    assert configs["topk"].seed == 7 and configs["relu_l1"].seed == 2
    assert c.train.train_kwargs(c.seed)["seed"] == 7
    assert c.replace(train=c.train.replace(seed=5)).train.train_kwargs(7)["seed"] == 5


BAD = [
    ('sedd = 1', "unknown key 'sedd'. Did you mean 'seed'"),
    ('[train]\nlrr = 1e-3', "unknown key 'lrr'. Did you mean 'lr'"),
    ('[train]\nlr = -1.0', "train.lr = -1.0 is invalid"),
    ('[train]\nn_samples = 10\nbatch_size = 64', "train.n_samples = 10 is invalid"),
    ('[train]\ninit_b_dec = "median"', "train.init_b_dec"),
    ('[world]\npreset = "toyy"', "Did you mean 'toy'"),
    ('[world]\npreset = "toy"\nrho = 0.5', "unknown key(s) ['rho']"),
    ('[world]\npreset = "aen-spiked"\nrho = "x"', "rho"),
    ('[world]\npreset = "toy"\n[world.firing]\nmax_p = 2.0', "max_p = 2.0 is invalid"),
    ('[[sae]]\nvariant = "topkk"', "Did you mean 'topk'"),
    ('[[sae]]\nvariant = "topk"\nkk = 3', "sae[0] (topk): unknown key 'kk'. Did you mean 'k'"),
    ('[[sae]]\nvariant = "topk"\nk = 1000', "k = 1000 is invalid"),
    ('[[sae]]\nvariant = "topk"\nd = 8', "sae.d"),
    ('[[sae]]\nvariant = "topk"\n[[sae]]\nvariant = "topk"\nk = 2', "sae[1].label"),
    ('[[sae]]\nm = 8', "with at least a `variant` key"),
    ('sae = []', "at least one SAE"),
    ('device = "gpu9"', "device = 'gpu9' is invalid"),
    ('[eval]\nmetrics = ["recon"]', "unknown metric family 'recon'"),
    ('[eval]\nn = 1', "EvalConfig.n = 1 is invalid"),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[b[1][:30] for b in BAD])
def test_bad_experiment_configs_name_the_key(text, expected):
    with pytest.raises(ValueError) as err:
        ExperimentConfig.from_toml(text)
    assert expected in str(err.value)


def test_dotted_overrides():
    c = ExperimentConfig.from_toml('[[sae]]\nvariant = "topk"\nk = 4\n')
    c2 = c.with_overrides({"sae.k": 8, "train.lr": 1e-2, "world.seed": 4, "eval.n": 100})
    assert c2.sae_configs()["topk"].k == 8 and c2.train.lr == 1e-2 and c2.world_config().seed == 4
    assert c2.eval.n == 100 and c.sae_configs()["topk"].k == 4  # the original is unchanged
    two = ExperimentConfig.from_toml('[[sae]]\nvariant = "topk"\n[[sae]]\nvariant = "relu_l1"\n')
    with pytest.raises(ValueError, match=r"sae\[i\]\.X"):
        two.with_overrides({"sae.k": 8})
    assert two.with_overrides({"sae[1].l1_coefficient": 0.5}).sae_configs()["relu_l1"].l1_coefficient == 0.5
    with pytest.raises(ValueError, match="unknown key 'lrr'"):
        c.with_overrides({"train.lrr": 1.0})
    data = {"a": {"b": 1}}
    set_dotted(data, "a.c.d", 2)
    assert data == {"a": {"b": 1, "c": {"d": 2}}}
    assert parse_value("1e-3") == 1e-3 and parse_value("[0, 1]") == [0, 1] and parse_value("topk") == "topk"
    assert parse_value('{kind = "zipf"}') == {"kind": "zipf"} and parse_value("true") is True


def test_digest_ignores_name_and_device_only():
    c = ExperimentConfig.from_toml('[[sae]]\nvariant = "topk"\n')
    assert c.replace(name="other", device="cuda").digest() == c.digest()
    assert c.with_overrides({"train.lr": 1e-3}).digest() != c.digest()
    assert c.replace(seed=1).digest() != c.digest()


SWEEP = '''
[[sae]]
variant = "relu_l1"
[sweep]
seeds = [0, 1]
[[sweep.grid]]
"sae.variant" = ["relu_l1", "aen"]
"sae.l1_coefficient" = [1e-3, 3e-3]
[[sweep.grid]]
sae.variant = ["topk"]
sae.k = [4, 8]
'''


def test_sweep_trials_grids_seeds_and_stable_ids():
    s = SweepConfig.from_toml(SWEEP)
    trials = s.trials()
    assert len(trials) == (2 * 2 + 2) * 2
    assert len({t.id for t in trials}) == len(trials)
    assert s.swept_keys() == ["sae.variant", "sae.l1_coefficient", "sae.k", "seed"]
    first = trials[0]
    assert first.params == {"sae.variant": "relu_l1", "sae.l1_coefficient": 1e-3, "seed": 0}
    assert first.config.seed == 0 and first.config.sae_configs()["relu_l1"].l1_coefficient == 1e-3
    assert first.id == first.config.digest()
    # the same trial in another sweep (other grid order, fewer values) has the same id
    other = SweepConfig.from_toml(SWEEP.replace('["relu_l1", "aen"]', '["aen", "relu_l1"]').replace("[0, 1]", "[1, 0]"))
    assert {t.id for t in other.trials()} == {t.id for t in trials}
    assert SweepConfig.from_toml(s.to_toml()) == s
    # the bare dotted keys of the second grid were read as "sae.k", not as a nested table
    assert s.grid[1] == {"sae.variant": ["topk"], "sae.k": [4, 8]}


BAD_SWEEPS = [
    (SWEEP.replace("sae.k = [4, 8]", "sae.kk = [4, 8]"), "unknown key 'kk'"),
    (SWEEP.replace("sae.k = [4, 8]", "sae.k = [4, 800]"), "k = 800 is invalid"),
    (SWEEP.replace("seeds = [0, 1]", "seeds = [0, 0]"), "a seed is repeated"),
    (SWEEP.replace("sae.k = [4, 8]", "sae.k = 4"), "non-empty list"),
    (SWEEP.replace("[sweep]", "[sweep]\nworkers = 2"), "unknown key(s) ['workers']"),
    ('[[sae]]\nvariant = "topk"\n[[sae]]\nvariant = "aen"\n[sweep]\n', "exactly one [[sae]]"),
    ('[[sae]]\nvariant = "topk"\n', "needs a [sweep] table"),
]


@pytest.mark.parametrize("text,expected", BAD_SWEEPS, ids=[b[1][:30] for b in BAD_SWEEPS])
def test_bad_sweeps_fail_before_any_work(text, expected):
    with pytest.raises(ConfigError) as err:
        SweepConfig.from_toml(text)
    assert expected in str(err.value)
