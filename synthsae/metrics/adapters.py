"""Turning "something that looks like an SAE" into what the metrics need, and checking it.

Any object with `W_dec` (m_sae, d) -- rows are the latents' decoder directions (atoms), as in a
world's dictionary D (m, d) and SAELens `W_dec` -- plus `encode(x) -> (n, m_sae)` and
`decode(z) -> (n, d)` can be evaluated. Raw weights are wrapped by `LinearSAE`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from synthsae.errors import fail, require


def as_tensor(value: Any, field: str, dtype: torch.dtype | None = torch.float32, device=None) -> torch.Tensor:
    """A torch tensor from a tensor or numpy array (no copy when already right); rejects other types."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        fail(field, type(value).__name__, "not an array", "a torch.Tensor or numpy.ndarray")
    return value.detach().to(device=device if device is not None else value.device, dtype=dtype or value.dtype)


def check_matrix(value: Any, field: str, cols: int | None = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A finite 2-D float tensor, optionally with `cols` columns; clear `ValueError` otherwise."""
    t = as_tensor(value, field, dtype=dtype)
    require(t.ndim == 2, field, tuple(t.shape), "expected a 2-D matrix", "shape (rows, d)")
    require(t.shape[0] >= 1, field, tuple(t.shape), "the matrix has no rows", "at least one row")
    if cols is not None:
        require(t.shape[1] == cols, field, tuple(t.shape),
                f"it has {t.shape[1]} columns but the other side has dimension {cols}", f"shape (rows, {cols})")
    require(bool(torch.isfinite(t).all()), field, f"tensor with {int((~torch.isfinite(t)).sum())} non-finite entries",
            "NaN or inf weights make every metric meaningless", "finite values")
    return t


class LinearSAE(torch.nn.Module):
    """A plain ReLU SAE from raw weights: z = ReLU((x - b_dec) W_enc + b_enc), x_hat = z W_dec + b_dec.

    Shapes follow SAELens and `synthsae.sae`: W_enc (d, m), b_enc (m,), W_dec (m, d) -- rows are
    the latents' atoms --, b_dec (d,). `b_enc` / `b_dec` default to zeros. `threshold` > 0 makes it
    a JumpReLU, z = pre * 1[pre > threshold] (no shrinkage; round-off never counts as firing).
    `activation="identity"` drops the nonlinearity. Useful to evaluate weights from any library.
    """

    def __init__(self, W_enc, W_dec, b_enc=None, b_dec=None, activation: str = "relu", threshold: float = 0.0):
        super().__init__()
        W_dec = check_matrix(W_dec, "W_dec")
        m, d = W_dec.shape
        W_enc = as_tensor(W_enc, "W_enc")
        if W_enc.ndim == 2 and W_enc.shape == (m, d) and m != d:
            fail("W_enc", tuple(W_enc.shape), "the encoder looks transposed (rows are latents)",
                 f"shape (d, m) = ({d}, {m}); pass W_enc.T")
        W_enc = check_matrix(W_enc, "W_enc", cols=m)
        require(W_enc.shape[0] == d, "W_enc", tuple(W_enc.shape), f"W_dec says d = {d}", f"shape ({d}, {m})")
        b_enc = torch.zeros(m) if b_enc is None else as_tensor(b_enc, "b_enc")
        b_dec = torch.zeros(d) if b_dec is None else as_tensor(b_dec, "b_dec")
        require(tuple(b_enc.shape) == (m,), "b_enc", tuple(b_enc.shape), "one bias per latent", f"shape ({m},)")
        require(tuple(b_dec.shape) == (d,), "b_dec", tuple(b_dec.shape), "one bias per input dimension", f"shape ({d},)")
        require(activation in ("relu", "identity"), "activation", activation, "unknown activation", "'relu' or 'identity'")
        self.W_enc = torch.nn.Parameter(W_enc.clone(), requires_grad=False)
        self.W_dec = torch.nn.Parameter(W_dec.clone(), requires_grad=False)
        self.b_enc = torch.nn.Parameter(b_enc.clone(), requires_grad=False)
        self.b_dec = torch.nn.Parameter(b_dec.clone(), requires_grad=False)
        require(threshold >= 0, "threshold", threshold, "a firing threshold cannot be negative", "a float >= 0")
        self.activation = activation
        self.threshold = float(threshold)

    @classmethod
    def from_dictionary(cls, D, threshold: float = 1e-3) -> "LinearSAE":
        """The "oracle" SAE of a dictionary D (m, d), rows = atoms: W_enc = D^T, W_dec = D, JumpReLU at
        `threshold`. On an orthonormal D it returns the true codes of noiseless samples."""
        D = check_matrix(D, "D")
        return cls(D.T.clone(), D, threshold=threshold)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = (x - self.b_dec) @ self.W_enc + self.b_enc
        if self.activation == "identity":
            return pre
        return pre * (pre > self.threshold)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def as_sae(sae: Any) -> Any:
    """Return an object with `W_dec`, `encode`, `decode`; raw weights become a `LinearSAE`.

    Accepted: such an object; a dict with keys W_enc, W_dec (and optionally b_enc, b_dec); a tuple
    (W_enc, W_dec[, b_enc, b_dec]). Anything else is a `ValueError`.
    """
    if all(hasattr(sae, a) for a in ("W_dec", "encode", "decode")):
        return sae
    if isinstance(sae, dict):
        unknown = set(sae) - {"W_enc", "W_dec", "b_enc", "b_dec"}
        require(not unknown and "W_enc" in sae and "W_dec" in sae, "sae", sorted(sae),
                "a weight dict needs W_enc and W_dec (and optionally b_enc, b_dec) only", "keys W_enc, W_dec[, b_enc, b_dec]")
        return LinearSAE(**sae)
    if isinstance(sae, (tuple, list)) and 2 <= len(sae) <= 4:
        return LinearSAE(*sae)
    fail("sae", type(sae).__name__, "it has no W_dec / encode / decode and is not raw weights",
         "an SAE object, a dict {W_enc, W_dec, b_enc, b_dec} or a tuple (W_enc, W_dec, b_enc, b_dec)")


def decoder_of(sae_or_decoder: Any, field: str = "sae") -> torch.Tensor:
    """The (m, d) float32 decoder of an SAE-like object, or the matrix itself (rows = atoms)."""
    if isinstance(sae_or_decoder, (torch.Tensor, np.ndarray)):
        return check_matrix(sae_or_decoder, field)
    sae = as_sae(sae_or_decoder)
    return check_matrix(sae.W_dec, f"{field}.W_dec")


def check_sae_against_world(sae: Any, world: Any) -> torch.Tensor:
    """Validate an SAE against a world (dimension, finiteness); return its (m_sae, d) decoder."""
    W = check_matrix(sae.W_dec, "sae.W_dec")
    require(W.shape[1] == world.d, "sae.W_dec", tuple(W.shape),
            f"the SAE reads {W.shape[1]}-dimensional inputs but the world has d = {world.d}",
            f"an SAE with W_dec of shape (m_sae, {world.d})")
    params = sae.parameters() if isinstance(sae, torch.nn.Module) else []
    for i, p in enumerate(params):
        require(bool(torch.isfinite(p).all()), f"sae parameter #{i} {tuple(p.shape)}", "non-finite values",
                "an SAE with NaN or inf weights cannot be evaluated", "finite weights")
    return W
