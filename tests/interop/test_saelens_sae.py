"""SAEs saved by SAELens load into synthsae with the same encode / decode, and ours export to a folder
SAELens loads (runs only where sae-lens is installed)."""

import json

import pytest
import torch

pytest.importorskip("sae_lens.saes")
from sae_lens import SAE as SAELensSAE  # noqa: E402
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig  # noqa: E402
from sae_lens.saes.gated_sae import GatedSAE, GatedSAEConfig  # noqa: E402
from sae_lens.saes.jumprelu_sae import JumpReLUSAE, JumpReLUSAEConfig  # noqa: E402
from sae_lens.saes.matryoshka_batchtopk_sae import (MatryoshkaBatchTopKTrainingSAE,  # noqa: E402
                                                    MatryoshkaBatchTopKTrainingSAEConfig)
from sae_lens.saes.standard_sae import StandardSAE, StandardSAEConfig  # noqa: E402
from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig  # noqa: E402

from synthsae.interop import load_saelens_sae, save_saelens_sae  # noqa: E402
from synthsae.sae import make  # noqa: E402

D_IN, D_SAE = 16, 40

SAELENS = {
    "standard": lambda: StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE)),
    "standard-no-bdec-in": lambda: StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=False)),
    "gated": lambda: GatedSAE(GatedSAEConfig(d_in=D_IN, d_sae=D_SAE)),
    "topk": lambda: TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=5)),
    "topk-rescaled": lambda: TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=5, rescale_acts_by_decoder_norm=True)),
    "jumprelu": lambda: JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE)),
    "batchtopk": lambda: BatchTopKTrainingSAE(BatchTopKTrainingSAEConfig(d_in=D_IN, d_sae=D_SAE, k=5)),
    "matryoshka": lambda: MatryoshkaBatchTopKTrainingSAE(MatryoshkaBatchTopKTrainingSAEConfig(
        d_in=D_IN, d_sae=D_SAE, k=5, matryoshka_widths=[10, 20, 40])),
}
OURS = {"standard": "relu_l1", "standard-no-bdec-in": "relu_l1", "gated": "gated", "topk": "topk",
        "topk-rescaled": "topk", "jumprelu": "jumprelu", "batchtopk": "batchtopk", "matryoshka": "matryoshka"}
# Folding (input bias, decoder-norm rescaling) changes the stored weights by round-off only.
FOLDED = {"standard-no-bdec-in", "topk-rescaled"}


def _random_saelens(name: str):
    sae = SAELENS[name]()
    g = torch.Generator().manual_seed(len(name))
    with torch.no_grad():
        for key, value in sae.state_dict().items():
            if value.dtype.is_floating_point and value.ndim > 0:
                value.copy_(0.3 * torch.randn(value.shape, generator=g))
        if name == "jumprelu":
            sae.threshold.abs_()
        if hasattr(sae, "topk_threshold"):
            sae.topk_threshold.fill_(0.2)
    return sae


def _inputs() -> torch.Tensor:
    return torch.randn(400, D_IN, generator=torch.Generator().manual_seed(1))


def _saelens_codes(sae, x):
    if hasattr(sae, "topk_threshold"):  # a training SAE; its inference form is a JumpReLU at topk_threshold
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        if sae.cfg.rescale_acts_by_decoder_norm:
            pre = pre * sae.W_dec.norm(dim=-1)
        return pre.relu() * (pre > sae.topk_threshold.float())
    return sae.encode(x)


@pytest.mark.parametrize("name", sorted(SAELENS))
def test_saelens_sae_loads_with_the_same_outputs(tmp_path, name):
    sl = _random_saelens(name)
    sl.save_model(tmp_path)
    ours = load_saelens_sae(tmp_path)
    assert ours.name == OURS[name]
    x = _inputs()
    with torch.no_grad():
        z_sl, z = _saelens_codes(sl, x), ours.encode(x)
        assert bool((z != 0).any()) and bool((z == 0).any())
        # same map up to float32 round-off (our encoder folds b_dec into the bias: one fused matmul)
        assert torch.allclose(z, z_sl, atol=1e-5)
        assert torch.equal(z != 0, z_sl != 0)
        assert torch.allclose(ours.decode(z), sl.decode(z_sl), atol=1e-5)
    assert torch.equal(load_saelens_sae(sl).W_dec, ours.W_dec)  # an in-memory SAELens SAE works too


@pytest.mark.parametrize("name", sorted(SAELENS))
def test_round_trip_saelens_synthsae_saelens(tmp_path, name):
    sl = _random_saelens(name)
    sl.save_model(tmp_path / "a")
    save_saelens_sae(load_saelens_sae(tmp_path / "a"), tmp_path / "b")
    back = SAELensSAE.load_from_disk(tmp_path / "b")
    x = _inputs()
    with torch.no_grad():
        z_back, z_sl = back.encode(x), _saelens_codes(sl, x)
        if name in FOLDED or hasattr(sl, "topk_threshold"):
            assert torch.allclose(z_back, z_sl, atol=1e-5) and torch.equal(z_back != 0, z_sl != 0)
            assert torch.allclose(back.decode(z_back), sl.decode(z_sl), atol=1e-5)
        else:
            assert torch.equal(z_back, z_sl)
            assert torch.equal(back.decode(z_back), sl.decode(z_sl))
            for key, value in back.state_dict().items():
                if key == "threshold":  # stored as log(threshold) in synthsae: equal to ~1 ulp
                    assert torch.allclose(value, sl.state_dict()[key], rtol=1e-6, atol=0)
                else:
                    assert torch.equal(value, sl.state_dict()[key]), key


@pytest.mark.parametrize("variant, hyper", [("relu_l1", {}), ("gated", {}), ("topk", {"k": 4}),
                                            ("batchtopk", {"k": 4}), ("jumprelu", {}), ("matryoshka", {"k": 4})])
def test_our_saes_export_to_saelens(tmp_path, variant, hyper):
    sae = make(variant, d=D_IN, m=D_SAE, seed=3, **hyper)
    with torch.no_grad():
        sae.b_enc.copy_(0.1 * torch.randn(D_SAE, generator=torch.Generator().manual_seed(0)))
        sae.b_dec.copy_(0.1 * torch.randn(D_IN, generator=torch.Generator().manual_seed(1)))
        if hasattr(sae, "threshold") and not hasattr(sae, "log_threshold"):
            sae.threshold.fill_(0.15)
        if hasattr(sae, "log_threshold"):
            sae.log_threshold.fill_(-2.0)
    save_saelens_sae(sae, tmp_path)
    sl = SAELensSAE.load_from_disk(tmp_path)
    x = _inputs()
    with torch.no_grad():
        z, z_sl = sae.encode(x), sl.encode(x)
        assert bool((z != 0).any())
        assert torch.allclose(z, z_sl, atol=1e-5) and torch.equal(z != 0, z_sl != 0)
        assert torch.allclose(sae.decode(z), sl.decode(z_sl), atol=1e-5)


def test_unsupported_architecture_and_version_raise_naming_them(tmp_path):
    _random_saelens("standard").save_model(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "architecture": "temporal"}))
    with pytest.raises(ValueError, match="temporal"):
        load_saelens_sae(tmp_path)
    old_meta = {**cfg["metadata"], "sae_lens_version": "5.9.1"}
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "metadata": old_meta}))
    with pytest.raises(ValueError, match="5.9.1"):
        load_saelens_sae(tmp_path)
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "layer_norm"}))
    with pytest.raises(ValueError, match="normalize_activations"):
        load_saelens_sae(tmp_path)
    with pytest.raises(ValueError, match="lista"):
        save_saelens_sae(make("lista", d=D_IN, m=D_SAE), tmp_path / "out")
