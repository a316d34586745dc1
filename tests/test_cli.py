from synthsae.cli import main


def test_demo_prints_world_summary(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "World: m = 128 features in d = 32" in out and "mean L0" in out


def test_world_save_and_bad_seed(tmp_path, capsys):
    assert main(["world", "hierarchy", "--save", str(tmp_path / "w")]) == 0
    assert (tmp_path / "w" / "world.safetensors").is_file()
    assert main(["world", "toy", "--seed", "-1"]) == 2
    assert "world.seed" in capsys.readouterr().err
