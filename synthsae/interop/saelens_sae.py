"""SAEs to and from SAELens's on-disk format (a folder with `cfg.json` + `sae_weights.safetensors`).

    sae = load_saelens_sae("path/to/saelens_sae")        # a synthsae SAE; synthsae.evaluate(sae, world) works
    save_saelens_sae(sae, "path/to/out")                 # SAE.load_from_disk(path) in SAELens loads it

Shapes are the same on both sides: W_enc (d_in, d_sae), W_dec (d_sae, d_in) with atoms as rows,
b_enc (d_sae,), b_dec (d_in,). Architectures (SAELens -> synthsae):

    standard              -> relu_l1        ReLU((x - b_dec) W_enc + b_enc)
    gated                 -> gated          b_gate is our b_enc; r_mag, b_mag as is
    topk                  -> topk           rescale_acts_by_decoder_norm is folded into unit-norm rows
    jumprelu              -> jumprelu       log_threshold = log(threshold) (thresholds must be >= 0)
    batchtopk             -> batchtopk      a training checkpoint: topk_threshold is our threshold
                                           (decoder-norm rescaling folded, as for topk)
    matryoshka_batchtopk  -> matryoshka     matryoshka_widths are our prefixes

Exporting, batchtopk and matryoshka become SAELens `jumprelu` (that is how SAELens itself saves them
for inference: one threshold for every latent). Exported configs are written in the sae-lens 6.x format.
Encoders with apply_b_dec_to_input = False are folded (b_enc += b_dec W_enc, same map up to
round-off); input normalization, hook_z reshaping and other architectures raise `ValueError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from synthsae.errors import fail, require, unknown_name
from synthsae.io import atomic_write_json, load_tensors, read_json, save_tensors
from synthsae.sae import SAE, make

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
SUPPORTED_MAJOR = 6  # the cfg.json layout we read and write (sae-lens >= 6.0)
EXPORT_VERSION = "6.0.0"

_FROM_SAELENS = {"standard": "relu_l1", "gated": "gated", "topk": "topk", "jumprelu": "jumprelu",
                 "batchtopk": "batchtopk", "matryoshka_batchtopk": "matryoshka"}
_TO_SAELENS = {"relu_l1": "standard", "gated": "gated", "topk": "topk", "jumprelu": "jumprelu",
               "batchtopk": "jumprelu", "matryoshka": "jumprelu"}


def _version(cfg: dict[str, Any]) -> str | None:
    meta = cfg.get("metadata") if isinstance(cfg.get("metadata"), dict) else {}
    return cfg.get("sae_lens_version") or meta.get("sae_lens_version")


def _check_cfg(cfg: Any, source: str) -> dict[str, Any]:
    require(isinstance(cfg, dict), source, type(cfg).__name__, "not a SAELens SAE config", "a JSON object")
    version = _version(cfg)
    if version is not None:
        try:
            major = int(str(version).split(".")[0])
        except ValueError:
            major = -1
        if major != SUPPORTED_MAJOR:
            fail(f"{source}: sae_lens_version", version, "this SAELens config version is not supported",
                 f"a config written by sae-lens {SUPPORTED_MAJOR}.x (re-save it with SAELens {SUPPORTED_MAJOR}.x)")
    elif "architecture" not in cfg:
        fail(f"{source}: sae_lens_version", None, "a config without version or architecture is the pre-6.0 "
             "format, which is not supported", f"a config written by sae-lens {SUPPORTED_MAJOR}.x")
    arch = cfg.get("architecture")
    if arch not in _FROM_SAELENS:
        unknown_name("SAELens architecture (supported by synthsae)", arch, _FROM_SAELENS)
    for key in ("d_in", "d_sae"):
        require(isinstance(cfg.get(key), int) and cfg[key] >= 1, f"{source}: {key}", cfg.get(key),
                "a dimension must be a positive int", "an int >= 1")
    norm = cfg.get("normalize_activations", "none")
    require(norm == "none", f"{source}: normalize_activations", norm,
            "input normalization is applied outside the SAE's weights and is not supported", "'none'")
    require(cfg.get("reshape_activations", "none") == "none", f"{source}: reshape_activations",
            cfg.get("reshape_activations"), "hook_z reshaping is not supported", "'none'")
    return cfg


def load_saelens_sae(source: str | Path | Any) -> SAE:
    """A synthsae SAE from a SAELens SAE folder (cfg.json + sae_weights.safetensors), or from a SAELens
    SAE object (anything with `.cfg.to_dict()` and `.state_dict()`). Weights are copied as float32."""
    if isinstance(source, (str, Path)):
        folder = Path(source)
        cfg = _check_cfg(read_json(folder / CFG_FILE), str(folder / CFG_FILE))
        tensors = load_tensors(folder / WEIGHTS_FILE)
        where = str(folder / WEIGHTS_FILE)
    else:
        require(hasattr(source, "cfg") and hasattr(source, "state_dict"), "source", type(source).__name__,
                "not a SAELens SAE", "a folder path or a sae_lens SAE")
        cfg = _check_cfg(source.cfg.to_dict(), type(source).__name__)
        tensors = {k: v.detach().cpu() for k, v in source.state_dict().items()}
        where = type(source).__name__
    arch = cfg["architecture"]
    d, m = cfg["d_in"], cfg["d_sae"]

    def get(key: str, shape: tuple[int, ...]) -> torch.Tensor:
        if key not in tensors:
            fail(where, f"no tensor {key!r}", f"a SAELens {arch!r} SAE has it", f"tensors {sorted(tensors)} + {key!r}")
        t = tensors[key].detach().to(torch.float32)
        require(tuple(t.shape) == shape, f"{where}:{key}", tuple(t.shape), "shape does not match cfg.json", f"{shape}")
        return t

    W_enc, W_dec, b_dec = get("W_enc", (d, m)), get("W_dec", (m, d)), get("b_dec", (d,))
    b_enc = get("b_gate" if arch == "gated" else "b_enc", (m,))
    params: dict[str, Any] = {}
    extra: dict[str, torch.Tensor] = {}
    if arch in ("topk", "batchtopk", "matryoshka_batchtopk") and cfg.get("rescale_acts_by_decoder_norm", False):
        # codes = act(pre * |W_dec_j|), x_hat = sum_j codes_j W_dec_j / |W_dec_j|: fold the norms (as SAELens
        # does when it saves an inference model); thresholds are already in units of the scaled codes.
        norms = W_dec.norm(dim=1).clamp(min=1e-8)
        W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms.unsqueeze(1)
    if arch == "topk":
        params["k"] = int(cfg.get("k", 100))
    elif arch == "gated":
        extra = {"r_mag": get("r_mag", (m,)), "b_mag": get("b_mag", (m,))}
    elif arch == "jumprelu":
        theta = get("threshold", (m,))
        if bool((theta < 0).any()):
            fail(f"{where}:threshold", f"min {float(theta.min()):.4g}", "a negative JumpReLU threshold lets negative "
                 "pre-activations through SAELens's mask but not through synthsae's", "thresholds >= 0")
        extra = {"log_threshold": torch.log(theta.double()).float()}
    elif arch in ("batchtopk", "matryoshka_batchtopk"):
        params["k"] = max(1, int(round(float(cfg.get("k", 100)))))
        threshold = tensors.get("topk_threshold")
        require(threshold is not None and threshold.numel() == 1, f"{where}:topk_threshold",
                None if threshold is None else tuple(threshold.shape), "a BatchTopK checkpoint stores one threshold",
                "a scalar tensor")
        extra = {"threshold": threshold.detach().to(torch.float32).reshape(())}
        if arch == "matryoshka_batchtopk":
            widths = [int(w) for w in cfg.get("matryoshka_widths") or []]
            if not widths or widths[-1] != m:
                widths.append(m)
            params["prefixes"] = tuple(widths)
    if not cfg.get("apply_b_dec_to_input", True):
        # Our encoders see x - b_dec; SAELens's sees x here. Same map: b_enc' = b_enc + b_dec W_enc.
        shift = b_dec @ W_enc
        b_enc = b_enc + shift
        if arch == "gated":
            extra["b_mag"] = extra["b_mag"] + shift * extra["r_mag"].exp()
    sae = make(_FROM_SAELENS[arch], d=d, m=m, **params)
    with torch.no_grad():
        for name, value in {"W_enc": W_enc, "W_dec": W_dec, "b_enc": b_enc, "b_dec": b_dec, **extra}.items():
            getattr(sae, name).copy_(value)
    return sae


def saelens_config(sae: SAE) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(cfg.json dict, SAELens state dict) of a synthsae SAE in SAELens's inference format."""
    name = getattr(sae, "name", None)
    if name not in _TO_SAELENS:
        unknown_name("synthsae SAE variant (exportable to SAELens)", name, _TO_SAELENS)
    arch = _TO_SAELENS[name]
    d, m = sae.config.d, sae.config.m
    f32 = {k: getattr(sae, k).detach().cpu().to(torch.float32).contiguous() for k in ("W_enc", "W_dec", "b_dec")}
    cfg: dict[str, Any] = {"architecture": arch, "d_in": d, "d_sae": m, "dtype": "float32", "device": "cpu",
                           "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
                           "metadata": {"sae_lens_version": EXPORT_VERSION, "exported_by": "synthsae",
                                        "synthsae_variant": name}}
    b_enc = sae.b_enc.detach().cpu().float().contiguous()
    if arch == "gated":
        state = {**f32, "b_gate": b_enc, "r_mag": sae.r_mag.detach().cpu().float().contiguous(),
                 "b_mag": sae.b_mag.detach().cpu().float().contiguous()}
    else:
        state = {**f32, "b_enc": b_enc}
    if arch == "topk":
        cfg.update(k=int(sae.config.k), rescale_acts_by_decoder_norm=False)
    if name == "jumprelu":
        state["threshold"] = sae.log_threshold.detach().cpu().double().exp().float().contiguous()
    elif name in ("batchtopk", "matryoshka"):
        # Our inference encoder is a * 1[a > max(threshold, 0)]; SAELens's JumpReLU is ReLU(a) * 1[a > theta].
        theta = float(sae.threshold.clamp_min(0))
        state["threshold"] = torch.full((m,), theta, dtype=torch.float32)
    return cfg, state


def save_saelens_sae(sae: SAE, folder: str | Path) -> Path:
    """Write `cfg.json` and `sae_weights.safetensors` into `folder` so that SAELens's
    `SAE.load_from_disk(folder)` loads an SAE with the same encode / decode (see module docstring)."""
    folder = Path(folder)
    cfg, state = saelens_config(sae)
    save_tensors(folder / WEIGHTS_FILE, state)
    atomic_write_json(folder / CFG_FILE, cfg)
    return folder
