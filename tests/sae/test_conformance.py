"""Conformance suite: every registered SAE variant must pass these (parametrized over available())."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import synthsae.sae as sae_mod
from synthsae._rng import generator
from synthsae.sae import SAE, available, make, train

D, M, K = 16, 48, 4
VARIANTS = available()


def build(name: str, **hp) -> SAE:
    cfg_cls = sae_mod.base.SAES.get(name).config_class
    fields = {f.name for f in dataclasses.fields(cfg_cls)}
    if "k" in fields:
        hp.setdefault("k", K)
    return make(name, D, M, **hp)


def batch(n: int = 20, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, D, generator=generator(seed)) + 0.3


def test_every_variant_is_listed():
    assert set(VARIANTS) >= {"relu_l1", "gated", "topk", "batchtopk", "jumprelu", "matryoshka", "aen",
                             "frozen_decoder", "soft_frozen_decoder", "frozen_encoder", "lista"}


@pytest.mark.parametrize("name", VARIANTS)
def test_shapes_and_dtypes(name):
    sae = build(name)
    x = batch()
    assert sae.W_dec.shape == (M, D) and sae.W_enc.shape == (D, M)
    assert sae.b_dec.shape == (D,) and sae.b_enc.shape == (M,)
    z = sae.encode(x)
    assert z.shape == (20, M) and z.dtype == torch.float32
    assert sae.decode(z).shape == (20, D) and sae(x).dtype == torch.float32
    out = sae.forward_train(x, 0)
    assert out.x_hat.shape == (20, D) and out.codes.shape == (20, M)
    terms = sae.loss(x, 0)
    assert "total" in terms and all(t.shape == () for t in terms.values())
    assert sae.config.kind == name and sae.name == name


@pytest.mark.parametrize("name", VARIANTS)
def test_forward_is_decode_of_encode(name):
    sae = build(name)
    x = batch()
    torch.testing.assert_close(sae(x), sae.decode(sae.encode(x)), rtol=0, atol=0)


@pytest.mark.parametrize("name", VARIANTS)
def test_numpy_input_and_bad_shape(name):
    sae = build(name)
    x = batch()
    torch.testing.assert_close(sae.encode(x.numpy()), sae.encode(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"expected \(n, 16\)"):
        sae.encode(torch.zeros(3, D + 1))


@pytest.mark.parametrize("name", VARIANTS)
def test_save_load_round_trip_after_training(name, small_world, tmp_path):
    sae = build(name)
    train(sae, small_world, 64 * 12, 64, lr=3e-3, progress=False)
    sae.save(tmp_path / "m")
    back = SAE.load(tmp_path / "m")
    assert type(back) is type(sae) and back.config == sae.config
    a, b = sae.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [p.requires_grad for p in sae.parameters()] == [p.requires_grad for p in back.parameters()]
    x = batch()
    assert torch.equal(back.encode(x), sae.encode(x))


@pytest.mark.parametrize("name", VARIANTS)
def test_load_rejects_mismatched_weights(name, tmp_path):
    sae = build(name)
    sae.save(tmp_path / "m")
    smaller = dataclasses.replace(sae.config, m=M // 2, prefixes=None) if hasattr(sae.config, "prefixes") \
        else dataclasses.replace(sae.config, m=M // 2)
    type(sae)(smaller).save(tmp_path / "o")
    (tmp_path / "m" / "model.safetensors").write_bytes((tmp_path / "o" / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="has shape"):
        SAE.load(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupted"):
        SAE.load(tmp_path / "m")


@pytest.mark.parametrize("name", VARIANTS)
def test_deterministic(name, small_world):
    a, b, c = build(name, seed=3), build(name, seed=3), build(name, seed=4)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert not torch.equal(a.W_dec, c.W_dec)
    ha = train(a, small_world, 64 * 10, 64, lr=3e-3, seed=5, progress=False)
    hb = train(b, small_world, 64 * 10, 64, lr=3e-3, seed=5, progress=False)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert ha.terms == hb.terms


@pytest.mark.parametrize("name", VARIANTS)
def test_decoder_norm_invariant(name, small_world):
    sae = build(name)
    train(sae, small_world, 64 * 20, 64, lr=1e-2, progress=False)
    norms = sae.W_dec.detach().norm(dim=1)
    if sae.unit_norm_decoder:
        torch.testing.assert_close(norms, torch.ones(M), rtol=0, atol=1e-5)


def test_decoder_norm_free_variant_really_moves(small_world):
    sae = make("relu_l1", D, M, decoder_norm_penalty=True)
    assert not sae.unit_norm_decoder
    train(sae, small_world, 64 * 20, 64, lr=1e-2, progress=False)
    assert (sae.W_dec.detach().norm(dim=1) - 1).abs().max() > 1e-3


@pytest.mark.parametrize("name", VARIANTS)
def test_short_training_lowers_the_loss(name, small_world):
    # seed 1: seed 0 draws the stand-in world's own dictionary as the first 32 decoder rows, which
    # starts a tied encoder (matching_pursuit) at the truth, where there is little loss left to lose
    sae = build(name, seed=1)
    x = small_world.sample(512, seed=12345).x
    before = float(sae.loss(x, 0)["total"].detach())
    train(sae, small_world, 64 * 60, 64, lr=3e-3, progress=False)
    after = float(sae.loss(x, 0)["total"].detach())
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("name", VARIANTS)
def test_load_to_device_and_cuda_refusal(name, tmp_path):
    build(name).save(tmp_path / "m")
    sae = SAE.load(tmp_path / "m", device="cpu")
    assert all(t.device.type == "cpu" for t in list(sae.parameters()) + list(sae.buffers()))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            SAE.load(tmp_path / "m", device="cuda")


@pytest.mark.gpu
@pytest.mark.parametrize("name", VARIANTS)
def test_cuda_training(name, small_world):
    sae = build(name)
    h = train(sae, small_world, 64 * 5, 64, device="cuda", progress=False)
    assert sae.W_dec.device.type == "cuda" and len(h.steps) > 0
    assert sae.encode(batch().cuda()).device.type == "cuda"


@pytest.mark.parametrize("name", VARIANTS)
def test_negative_coefficients_rejected(name):
    cfg_cls = sae_mod.base.SAES.get(name).config_class
    coefs = [f.name for f in dataclasses.fields(cfg_cls) if f.name.endswith("_coefficient")]
    for c in coefs:
        with pytest.raises(ValueError, match=c):
            build(name, **{c: -0.1})


@pytest.mark.parametrize("name", [n for n in VARIANTS
                                  if "k" in {f.name for f in dataclasses.fields(sae_mod.base.SAES.get(n).config_class)}])
def test_invalid_k_rejected(name):
    for k in (0, -1, M + 1):
        with pytest.raises(ValueError, match="k"):
            make(name, D, M, k=k)


def test_unknown_names_suggest():
    with pytest.raises(ValueError, match="Did you mean 'batchtopk'"):
        make("batch_topk", D, M)
    with pytest.raises(ValueError, match="Did you mean 'l1_coefficient'"):
        make("relu_l1", D, M, l1_coeficient=1.0)
    with pytest.raises(ValueError, match="m = 0"):
        make("relu_l1", D, 0)


def test_config_round_trips_through_json_and_toml():
    for name in VARIANTS:
        cfg = build(name).config
        back = sae_mod.SAEConfig.from_json(cfg.to_json())
        assert back == cfg and type(back) is type(cfg)
        assert sae_mod.SAEConfig.from_toml(cfg.to_toml()) == cfg
