"""User mistakes at the command line and in the Python API: each gives one `synthsae: error: ...` line
(exit 2) or a `ConfigError` naming what was given, why it is wrong and what would be right; genuine
bugs keep their traceback; a sweep with failed trials exits 1."""

import errno
import os
from pathlib import Path

import pytest
import torch

from synthsae import cli
from synthsae._rng import parse_device, resolve_device
from synthsae.cli import UserError, main
from synthsae.errors import ConfigError, fail, unknown_name

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CONFIG = str(CONFIGS / "topk_vs_relu.toml")


def user_error(argv, capsys) -> str:
    """Run `synthsae argv`, assert exit 2 with one error line and no traceback; return that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("synthsae: error: ")]
    assert len(lines) == 1, err
    return err


# ---- the error class ----------------------------------------------------------------------------------
def test_config_error_is_a_value_error_raised_by_the_helpers():
    assert issubclass(ConfigError, ValueError) and issubclass(UserError, ConfigError)
    with pytest.raises(ConfigError, match=r"x = 3 is invalid: why\. Expected: what\."):
        fail("x", 3, "why", "what")
    with pytest.raises(ConfigError, match="Did you mean 'topk'"):
        unknown_name("SAE variant", "topkk", ["topk", "relu_l1"])


# ---- devices --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("device,why", [
    ("gpu", "did you mean 'cuda'"), ("GPU", "did you mean 'cuda'"), ("", "not a device name"),
    ("cuda:-1", "not a device name"), ("cuda:a", "not a device name"), ("meta", "not on 'meta' devices"),
    ("xla", "not on 'xla' devices"), (3.5, "a device is named by a string"),
])
def test_bad_device_names_raise_config_error(device, why):
    with pytest.raises(ConfigError, match=why) as info:
        resolve_device(device)
    assert "Expected: 'cpu', 'cuda'" in str(info.value)
    with pytest.raises(ConfigError, match=why):
        parse_device(device)


def test_sparse_code_and_world_reject_bad_devices():
    from synthsae.solvers import sparse_code
    from synthsae.world import World

    X, D = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    with pytest.raises(ConfigError, match="device = 'gpu' is invalid"):
        sparse_code(X, D, 0.1, device="gpu")
    with pytest.raises(ConfigError, match="not on 'meta' devices"):
        World.preset("toy").sample(4, device="meta")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_cuda_says_so(capsys):
    with pytest.raises(ConfigError, match="CUDA is not available here"):
        resolve_device("cuda")
    err = user_error(["run", CONFIG, "--device", "cuda"], capsys)
    assert "--device = 'cuda' is invalid: CUDA is not available" in err and "Expected: 'cpu'" in err


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_index_beyond_the_devices_says_how_many():
    n = torch.cuda.device_count()
    with pytest.raises(ConfigError, match=f"this machine has {n} CUDA device"):
        resolve_device(f"cuda:{n}")
    assert resolve_device("cuda:0").type == "cuda"


@pytest.mark.parametrize("command", [["run", CONFIG], ["demo"], ["evaluate", "x", "--world", "toy"],
                                     ["sweep", str(CONFIGS / "sweep_l1.toml")]])
def test_cli_device_checked_before_any_work(command, capsys, tmp_path):
    err = user_error([*command, "--device", "gpu", "--out", str(tmp_path / "o")], capsys)
    assert "--device = 'gpu' is invalid" in err and "did you mean 'cuda'" in err
    assert not (tmp_path / "o").exists()


def test_config_file_device_is_checked_by_name(capsys):
    err = user_error(["run", CONFIG, "--print-config", "--set", 'device="meta"'], capsys)
    assert "device = 'meta' is invalid" in err
    assert main(["run", CONFIG, "--print-config", "--set", 'device="cuda:1"']) == 0  # written for another machine
    capsys.readouterr()


# ---- output folders ---------------------------------------------------------------------------------
def _argv(command, out, tmp):
    return {"run": ["run", CONFIG, "--out", out], "demo": ["demo", "--out", out],
            "evaluate": ["evaluate", str(tmp / "sae"), "--world", "toy", "--out", out],
            "world": ["world", "toy", "--save", out],
            "sweep": ["sweep", str(CONFIGS / "sweep_l1.toml"), "--out", out]}[command]


@pytest.mark.parametrize("command", ["run", "demo", "evaluate", "world", "sweep"])
def test_out_at_an_existing_file_is_refused_and_the_file_kept(command, tmp_path, capsys):
    target = tmp_path / "results.txt"
    target.write_text("precious")
    err = user_error(_argv(command, str(target), tmp_path), capsys)
    option = "--save" if command == "world" else "--out"
    assert f"{option} {target} is an existing file, not a folder" in err and "Expected: a new or existing folder" in err
    assert target.read_text() == "precious"


@pytest.mark.parametrize("command", ["run", "world"])
def test_out_under_a_file_is_refused(command, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    err = user_error(_argv(command, str(tmp_path / "f" / "sub" / "dir"), tmp_path), capsys)
    assert f"is inside {tmp_path / 'f'}, which is a file" in err


def test_empty_out_is_refused(tmp_path, capsys):
    err = user_error(["world", "toy", "--save", ""], capsys)
    assert "--save '' is empty" in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (a folder even root cannot write)")
def test_out_where_nothing_can_be_created_is_refused(capsys):
    # works as root too, unlike chmod: /proc refuses new entries for everyone
    err = user_error(["world", "toy", "--save", "/proc/synthsae-test/w"], capsys)
    assert "cannot create folders in /proc" in err and "Expected: a folder you can write to" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root ignores permission bits, so chmod cannot make a folder read-only for it")
def test_out_in_a_read_only_folder_is_refused(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        err = user_error(["world", "toy", "--save", str(ro / "w")], capsys)
        assert "permission denied" in err
    finally:
        ro.chmod(0o700)


def test_os_errors_on_user_paths_are_one_line_and_others_keep_the_traceback(monkeypatch, capsys):
    def disk_full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/model.safetensors")

    monkeypatch.setitem(cli.COMMANDS, "recipes", disk_full)
    err = user_error(["recipes"], capsys)
    assert "/data/out/model.safetensors: the disk is full" in err

    def socket_error(args):
        raise OSError(errno.ECONNRESET, "Connection reset")

    monkeypatch.setitem(cli.COMMANDS, "recipes", socket_error)
    with pytest.raises(OSError):
        main(["recipes"])


# ---- bugs keep their traceback ---------------------------------------------------------------------
@pytest.mark.parametrize("exc", [RuntimeError("bug"), KeyError("bug"), TypeError("bug"), AttributeError("bug")])
def test_internal_errors_keep_their_traceback(exc, monkeypatch):
    def broken(args):
        raise exc

    monkeypatch.setitem(cli.COMMANDS, "recipes", broken)
    with pytest.raises(type(exc)):
        main(["recipes"])


def test_a_value_error_from_inside_python_or_torch_is_a_bug(monkeypatch):
    def broken(args):
        torch.zeros(2).view(3)  # RuntimeError inside torch
        return 0

    monkeypatch.setitem(cli.COMMANDS, "recipes", broken)
    with pytest.raises(RuntimeError):
        main(["recipes"])

    def unpack(args):
        a, b = [1, 2, 3]  # ValueError raised by Python itself, not by a synthsae input check
        return a + b

    monkeypatch.setitem(cli.COMMANDS, "recipes", unpack)
    with pytest.raises(ValueError, match="too many values"):
        main(["recipes"])


def test_missing_optional_dependency_is_a_user_error_other_imports_are_bugs(monkeypatch, capsys):
    def needs_ray(args):
        raise ModuleNotFoundError("No module named 'ray'", name="ray")

    monkeypatch.setitem(cli.COMMANDS, "recipes", needs_ray)
    assert "No module named 'ray'" in user_error(["recipes"], capsys)

    def broken_import(args):
        raise ImportError("cannot import name 'nothing' from 'synthsae.world'", name="synthsae.world")

    monkeypatch.setitem(cli.COMMANDS, "recipes", broken_import)
    with pytest.raises(ImportError):
        main(["recipes"])


# ---- config files and --set ----------------------------------------------------------------------
def test_experiment_without_sae_tables_is_an_error_with_an_example(tmp_path, capsys):
    from synthsae.experiments.config import ExperimentConfig

    (tmp_path / "c.toml").write_text('[world]\npreset = "toy"\n[train]\nn_samples = 2048\n')
    err = user_error(["run", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o")], capsys)
    assert "no [[sae]] table" in err and 'variant = "topk"' in err and "variants: " in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match=r"no \[\[sae\]\] table"):
        ExperimentConfig.from_toml("")
    assert ExperimentConfig().sae[0].variant == "topk"  # the Python default stays for code that builds configs


@pytest.mark.parametrize("assignment,field", [
    ('train.lr="1e-3"', "train.lr = '1e-3' is invalid"), ('sae[0].k="4"', "k = '4' is invalid"),
    ('seed="0"', "seed = '0' is invalid"), ("train.lr=abc", "train.lr = 'abc' is invalid"),
    ('world.seed="3"', "world.seed = '3' is invalid"), ("train.lr=nan", "lr = nan is invalid"),
])
def test_string_typed_numbers_in_set_are_named(assignment, field, capsys):
    err = user_error(["run", CONFIG, "--print-config", "--set", assignment], capsys)
    assert field in err and "Expected:" in err


def test_config_path_that_is_a_folder_or_binary(tmp_path, capsys):
    (tmp_path / "d.toml").mkdir()
    assert "is a folder, not a config file" in user_error(["run", str(tmp_path / "d.toml")], capsys)
    (tmp_path / "b.toml").write_bytes(b"\xff\xfe\x00\x81")
    assert "is not a text file" in user_error(["run", str(tmp_path / "b.toml")], capsys)


@pytest.mark.parametrize("argv,expected", [
    (["world", "toy", "--seed", str(2**70)], "too large for a 64-bit generator seed"),
    (["run", "nosuchrecipe", "--threads", "100000"], "far more threads than"),
])
def test_out_of_range_numbers(argv, expected, capsys):
    assert expected in user_error(argv, capsys)


# ---- memory ------------------------------------------------------------------------------------------------
def test_absurd_sae_sizes_are_refused_before_allocating():
    from synthsae.memory import available_bytes, sae_bytes
    from synthsae.sae.base import make

    assert sae_bytes(10, 20) == 3 * (2 * 10 * 20 + 10 + 20) * 4 + 2 * 8 * 20
    if available_bytes() is None:
        pytest.skip("the available memory cannot be read here")
    with pytest.raises(ConfigError, match=r"TopKSAE\(d, m\) = 'd = 1000000000, m = 16' is invalid: training it "
                                          r".*needs about .* GiB of memory, but only .* GiB is available"):
        make("topk", 10**9, 16, k=1)
    with pytest.raises(ConfigError, match="at most about m = "):
        make("relu_l1", 10**5, 10**7)
    make("topk", 64, 128, k=4)  # ordinary sizes are not even checked


def test_absurd_sae_at_the_cli_is_one_error_line(tmp_path, capsys):
    err = user_error(["run", CONFIG, "--set", "sae[0].m=1000000000000", "--set", "plots=false", "--quiet",
                      "--out", str(tmp_path / "o")], capsys)
    assert "GiB of memory" in err


# ---- sweeps with failed trials ----------------------------------------------------------------------
def test_sweep_with_a_failed_trial_exits_1_and_says_how_many(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", str(CONFIGS / "sweep_l1.toml"), "--out", str(out), "--executor", "serial", "--quiet",
            "--set", "sweep.seeds=[0]", "--set", 'sweep.grid={"train.lr" = [1e30]}', "--set", "sae.m=8",
            "--set", "train.n_samples=256", "--set", "train.batch_size=256", "--set", "eval.n=256",
            "--set", "plots=false", "--set", 'eval.metrics=["reconstruction"]']
    assert main(argv) == cli.EXIT_FAILED == 1
    captured = capsys.readouterr()
    assert "synthsae: error: 1 of 1 trials failed" in captured.err and "results.csv" in captured.err
    assert "--retry-failed" in captured.err
    assert (out / "results.csv").is_file()


def test_an_unknown_sweep_key_is_a_user_error(capsys):
    err = user_error(["sweep", str(CONFIGS / "sweep_l1.toml"), "--set", "sweep.workers=2"], capsys)
    assert "unknown key(s) ['workers']" in err


def test_a_recipe_with_failed_cells_exits_1_with_one_error_line(monkeypatch, capsys, tmp_path):
    from synthsae.experiments import engine

    def failing(*args, **kwargs):
        raise engine.CellsFailed("recipe starvation: 1 of 4 cells failed (x: boom)")

    monkeypatch.setattr(engine, "run_recipe", failing)
    assert main(["run", "starvation", "--small", "--out", str(tmp_path / "o")]) == cli.EXIT_FAILED
    assert "synthsae: error: recipe starvation: 1 of 4 cells failed" in capsys.readouterr().err
