"""Hypothesis strategies for careless command-line input (used by tests/test_fuzz_cli.py).

Each strategy draws what a hurried user might type: `--set` assignments with wrong types, quoted
numbers, NaN / inf and unknown keys; device names torch does or does not know; numbers out of range.
"""

from __future__ import annotations

from hypothesis import strategies as st

# keys of an experiment config (configs/topk_vs_relu.toml), plus near misses
SET_KEYS = (
    "seed", "name", "device", "plots", "world.seed", "world.d", "world.m", "world.preset", "world.noise.std",
    "world.firing.max_p", "sae[0].k", "sae[0].m", "sae[0].variant", "sae[0].seed", "sae[0].dead_after_steps",
    "sae[1].l1_coefficient", "sae[2].k", "sae.k", "train.lr", "train.n_samples", "train.batch_size", "train.betas",
    "train.grad_clip", "train.seed", "train.init_b_dec", "train.lr_warmup_steps", "train.resample_every",
    "eval.n", "eval.metrics", "eval.seed", "train.lrr", "trian.lr", "sae[0]", "train", "world",
)

DEVICE_NAMES = ("gpu", "GPU", "cuda", "cuda:0", "cuda:7", "cuda:-1", "cuda:a", "mps", "xla", "meta", "", " ",
                "cpu ", "CPU", "0", "1", "cpu:0", "cpu", "nvidia", "tpu", "cuda:0:1", "cuda,cpu")


def toml_values() -> st.SearchStrategy[str]:
    """The text after `key=` in `--set key=value`: valid TOML of every type, quoted numbers, garbage."""
    number = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True))
    plain = st.one_of(
        number.map(lambda v: str(v).lower().replace("infinity", "inf")),
        number.map(lambda v: f'"{v}"'),  # a number typed as a string
        st.booleans().map(lambda b: str(b).lower()),
        st.sampled_from(['"topk"', '"nope"', "[]", "[1, 2]", '["0.9", 0.99]', "{}", '{kind = "zipf"}', "1e400",
                         "-0", "0x10", "1_000", "nan", "-inf", '""', "[[1]]", "1e-3", "3", "0", "-1", "true"]),
        st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8),
    )
    return plain


def set_assignments() -> st.SearchStrategy[str]:
    """One `key=value` for `--set`: a known key or a random dotted one, and a value from `toml_values`."""
    key = st.one_of(st.sampled_from(SET_KEYS),
                    st.lists(st.text("abcxyz_[]0123", min_size=0, max_size=5), min_size=1, max_size=3).map(".".join))
    return st.tuples(key, toml_values()).map(lambda kv: f"{kv[0]}={kv[1]}")


def device_names() -> st.SearchStrategy[str]:
    """Device strings, known to torch or not (`--device X`)."""
    return st.one_of(st.sampled_from(DEVICE_NAMES),
                     st.text("cpugamxl:0123-", max_size=7),
                     st.integers(-3, 20).map(lambda i: f"cuda:{i}"))


def int_texts() -> st.SearchStrategy[str]:
    """Text for an integer option (--seed, --n, --samples): in and out of range, or not a number."""
    return st.one_of(st.integers(-2**70, 2**70).map(str), st.sampled_from(["abc", "1.5", "1e3", "", "-0", " 7", "nan"]))
