"""Shared streaming machinery: encode world samples in chunks, keep SAE codes in sparse form,
and decode them fast when the SAE's decoder is affine (z W_dec + b, checked numerically)."""

from __future__ import annotations

import warnings

import torch

from synthsae._rng import generator
from synthsae.errors import require


def sparse_rows(z: torch.Tensor):
    """Row-major non-zeros of a dense (b, m) code matrix: (rows, cols, values)."""
    r, c = torch.nonzero(z, as_tuple=True)
    return r, c, z[r, c]


class Decoder:
    """Decodes SAE codes. If `sae.decode` is affine with matrix W_dec (probed on random sparse codes),
    decoding uses a sparse product (cost ~ nnz * d instead of b * m * d); otherwise `sae.decode`.
    `mode`: "auto" (probe), "sae" (always sae.decode), "affine" (trust it, still probed once).
    """

    def __init__(self, sae, W_dec: torch.Tensor, mode: str = "auto", seed: int = 0):
        require(mode in ("auto", "sae", "affine"), "decode", mode, "unknown decoding mode", "'auto', 'sae' or 'affine'")
        self.sae, self.W = sae, W_dec
        self.affine = False
        if mode == "sae":
            return
        m = W_dec.shape[0]
        g = generator(seed)
        with torch.no_grad():
            zero = torch.zeros(1, m, dtype=W_dec.dtype, device=W_dec.device)
            self.bias = sae.decode(zero)[0].detach()
            probe = torch.rand(8, m, generator=g).to(W_dec) * (torch.rand(8, m, generator=g) < min(1.0, 16 / m)).to(W_dec)
            want = sae.decode(probe)
            got = probe @ W_dec + self.bias
        scale = float(want.abs().max()) + 1e-6
        ok = bool(torch.isfinite(want).all()) and float((want - got).abs().max()) <= 1e-4 * scale
        require(ok or mode == "auto", "decode", mode, "sae.decode is not z @ W_dec + b on a random probe",
                "decode='auto' or 'sae'")
        self.affine = ok

    def __call__(self, z: torch.Tensor, rows=None, cols=None, vals=None) -> torch.Tensor:
        if not self.affine:
            return self.sae.decode(z)
        if rows is None:
            rows, cols, vals = sparse_rows(z)
        b, m = z.shape
        crow = torch.zeros(b + 1, dtype=torch.long, device=z.device)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=b), 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "sparse CSR is beta": we only use the stable CSR @ dense product
            S = torch.sparse_csr_tensor(crow, cols, vals, (b, m))
            return (S @ self.W) + self.bias


def batches(world, n: int, batch_size: int, seed, device, dtype):
    """Yield world batches totalling exactly n samples (the last one truncated)."""
    got = 0
    for batch in world.stream(batch_size, seed=seed, device=device, dtype=dtype):
        take = min(batch_size, n - got)
        if take < batch.x.shape[0]:
            batch = truncate(batch, take)
        yield batch
        got += take
        if got >= n:
            return


def truncate(batch, k: int):
    """The first k samples of a batch (x and sparse codes)."""
    c = batch.codes
    keep = c.rows < k
    return _Trunc(batch.x[:k], _Codes(c.rows[keep], c.cols[keep], c.values[keep], k, c.m))


class _Codes:
    def __init__(self, rows, cols, values, n, m):
        self.rows, self.cols, self.values, self.n, self.m = rows, cols, values, n, m


class _Trunc:
    def __init__(self, x, codes):
        self.x, self.codes = x, codes
