"""SAE.save / SAE.load: the folder is verified as a pair, the variant and finiteness are checked (issue 18)."""

import json
import math
import os
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from synthsae.sae import make
from synthsae.sae.base import SAE


def saved(tmp_path, name="topk", **kw):
    kw = {"k": 2, **kw} if name == "topk" else kw
    return make(name, d=8, m=16, **kw).save(tmp_path / name)


def test_round_trip_and_digest_recorded(tmp_path):
    folder = saved(tmp_path)
    meta = json.loads((folder / "config.json").read_text())
    assert len(meta["weights_sha256"]) == 64
    back = SAE.load(folder)
    assert back.config == make("topk", d=8, m=16, k=2).config


def test_a_variant_mismatch_is_refused(tmp_path):
    """A TopK SAE whose config.json says relu_l1 has the same tensors as a ReLU SAE: only the recorded
    variant tells them apart."""
    folder = saved(tmp_path)
    meta = json.loads((folder / "config.json").read_text())
    for key in ("k", "aux_k", "aux_coefficient"):
        meta.pop(key)
    meta["kind"] = "relu_l1"
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"config.json: kind = 'relu_l1' is invalid: .*a 'topk' SAE"):
        SAE.load(folder)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_weights_are_refused(tmp_path, value):
    folder = saved(tmp_path)
    state = load_file(folder / "model.safetensors")
    state["W_dec"][0, 0] = value
    save_file(state, folder / "model.safetensors", metadata={"variant": "topk"})
    with pytest.raises(ValueError, match=r"model.safetensors: W_dec = '1 NaN/inf entries'"):
        SAE.load(folder)


def test_weights_from_another_save_are_refused(tmp_path):
    folder = saved(tmp_path)
    other = make("topk", d=8, m=16, k=2, seed=5).save(tmp_path / "other")
    (folder / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match=r"weights_sha256 = .*model.safetensors has digest"):
        SAE.load(folder)


def test_an_edited_hyperparameter_is_honoured(tmp_path):
    """k is not part of the weights: an edited k loads, and the loaded SAE uses (and reports) it."""
    folder = saved(tmp_path)
    meta = json.loads((folder / "config.json").read_text())
    meta["k"] = 3
    (folder / "config.json").write_text(json.dumps(meta))
    back = SAE.load(folder)
    assert back.config.k == 3
    z = back.encode(torch.randn(5, 8, generator=torch.Generator().manual_seed(0)))
    assert int((z != 0).sum(1).max()) <= 3


def test_files_get_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        folder = saved(tmp_path)
    finally:
        os.umask(old)
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in folder.iterdir()} == {0o644}


def test_save_onto_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        make("topk", d=8, m=16, k=2).save(tmp_path / "f")
