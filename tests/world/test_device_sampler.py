"""The device sampler (synthsae.world.device_sampler) against the CPU reference sampler.

Its code path runs here on the CPU (`sampler="device"`). Statistical checks are two-sample tests
of a device-sampler draw against an independent reference draw (different seeds) of the same world:
exact conditional (Fisher / hypergeometric) tests of firing and co-firing counts, chi-square
homogeneity of the L0 histogram, Kolmogorov-Smirnov of magnitudes. Each test splits ALPHA = 1e-6
over its checks (union bound), so a correct sampler fails a test with probability below 1e-6; the
seeds are fixed, so the suite is deterministic. Hierarchy constraints are checked exactly.
`test_checks_have_power` shows the checks reject samplers with a wrong law at these sizes.
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from synthsae.world import (Block, ExactlyK, FoldedNormal, HierarchyConfig, Linear, LowRank, Noise, NormalRelu, Uniform,
                            Vector, World, WorldConfig, Zipf)
from synthsae.world import device_sampler
from synthsae.world.device_sampler import device_generator, sample_codes_on_device, uses_device_sampler

ALPHA = 1e-6
N = 20_000  # samples per side of every two-sample test


def _hierarchy() -> World:
    """The hierarchy preset (independent firing, half the parents ME) with children scaled by parents."""
    base = World.preset("hierarchy").config
    return World(base.replace(hierarchy=base.hierarchy.replace(scale_children_by_parent=True)))


def _correlated() -> World:
    """Block-correlated copula firing (blocks of 4, rho 0.6), no hierarchy."""
    return World(WorldConfig(d=32, m=64, firing=Zipf(exponent=1.0, max_p=0.3, min_p=0.02),
                             correlation=Block(size=4, rho=0.6), magnitudes=Uniform(low=0.5, high=1.5), seed=3))


def _mini_synthsaebench() -> World:
    """SynthSAEBench-16k scaled down: Zipf(0.5) firing, low-rank copula, a depth-3 forest with all
    children mutually exclusive and scaled by their parent, max(0, N(mean, std)) magnitudes, noise, bias."""
    return World(WorldConfig(
        d=64, m=1024, firing=Zipf(exponent=0.5, max_p=0.4, min_p=5e-3), correlation=LowRank(rank=8, scale=0.15),
        hierarchy=HierarchyConfig(roots=8, branching=4, depth=3, mutually_exclusive=1.0, compensate="none",
                                  scale_children_by_parent=True),
        magnitudes=NormalRelu(mean=Linear(start=5.0, end=4.0), std=FoldedNormal(mean=0.5, std=0.5)),
        noise=Noise(std=0.05, bias_norm=1.0), seed=1))


def _hierarchy_copula() -> World:
    """The hierarchy preset (ordinary and ME children) under a block copula: top-down copula sampling."""
    return World(_hierarchy().config.replace(correlation=Block(size=8, rho=0.5)))


WORLDS = {"hierarchy": _hierarchy, "correlated": _correlated, "hierarchy-copula": _hierarchy_copula,
          "mini-synthsaebench": _mini_synthsaebench}
_cache: dict = {}


def _draws(name: str):
    """(world, device-sampler batch, reference batch) of N samples each, built once per module."""
    if name not in _cache:
        w = WORLDS[name]()
        _cache[name] = (w, w.sample(N, seed=11, sampler="device"), w.sample(N, seed=12, sampler="reference"))
    return _cache[name]


def _two_sample_counts(a: np.ndarray, b: np.ndarray, n1: int, n2: int) -> np.ndarray:
    """Two-sided p-values of "a of n1 and b of n2 have the same success probability", per entry:
    Fisher's exact test (a given a + b is hypergeometric), doubled smaller tail (conservative)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    rv = stats.hypergeom(n1 + n2, a + b, n1)
    return np.minimum(1.0, 2 * np.minimum(rv.cdf(a), rv.sf(a - 1)))


def _rates_p(dev, ref, m: int) -> np.ndarray:
    ca = torch.bincount(dev.cols, minlength=m).numpy()
    cb = torch.bincount(ref.cols, minlength=m).numpy()
    return _two_sample_counts(ca, cb, dev.n, ref.n)


def _cofire_p(dev, ref, pairs: torch.Tensor) -> np.ndarray:
    """p-values of equal co-firing rates for the (P, 2) feature pairs."""
    out = []
    for codes in (dev, ref):
        active = codes.active()
        out.append((active[:, pairs[:, 0]] & active[:, pairs[:, 1]]).sum(0).numpy())
    return _two_sample_counts(out[0], out[1], dev.n, ref.n)


def _l0_p(dev, ref) -> float:
    """Chi-square homogeneity of the two L0 histograms (tail bins pooled to >= 20 counts per column)."""
    la, lb = dev.l0().numpy(), ref.l0().numpy()
    top = int(max(la.max(), lb.max())) + 1
    ha, hb = np.bincount(la, minlength=top), np.bincount(lb, minlength=top)
    cols, acc = [], np.zeros(2, dtype=np.int64)
    for i in range(top):
        acc += (ha[i], hb[i])
        if acc.sum() >= 20:
            cols.append(acc.copy())
            acc[:] = 0
    if acc.sum():
        cols[-1] += acc
    table = np.array(cols).T
    return float(stats.chi2_contingency(table).pvalue) if table.shape[1] > 1 else 1.0


def _magnitude_p(dev, ref, features) -> list[float]:
    return [float(stats.ks_2samp(dev.values[dev.cols == f].numpy(), ref.values[ref.cols == f].numpy()).pvalue)
            for f in features]


def _hierarchy_ok(world: World, codes, parents_kept: bool = True) -> None:
    """Exactly: a child never fires without its parent, ME siblings never co-fire. parents_kept=False:
    only the latter (a parent's magnitude draw of 0 removes the parent, not its children, in the
    reference sampler too, unless children are scaled by their parent)."""
    active = codes.active()
    parents = world.parents
    child = (parents >= 0).nonzero().squeeze(1)
    if parents_kept:
        assert not bool((active[:, child] & ~active[:, parents[child]]).any()), "a child fired without its parent"
    for p in world._forest.exclusive.nonzero().squeeze(1).tolist():
        kids = (parents == p).nonzero().squeeze(1)
        assert int(active[:, kids].sum(1).max()) <= 1, f"mutually exclusive children of {p} co-fired"


# ---- the law ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(WORLDS))
def test_marginal_firing_rates(name):
    w, dev, ref = _draws(name)
    p = _rates_p(dev.codes, ref.codes, w.m)
    assert p.min() > ALPHA / w.m, (int(p.argmin()), float(p.min()))


def test_rates_match_exact_marginals_under_independent_firing():
    """One-sample check with more power: without a copula the marginals are known exactly."""
    w, dev, _ = _draws("hierarchy")
    counts = torch.bincount(dev.codes.cols, minlength=w.m).numpy()
    q = w.firing_probabilities.numpy()
    p = [stats.binomtest(int(c), N, float(pj)).pvalue for c, pj in zip(counts, q)]
    assert min(p) > ALPHA / w.m, (int(np.argmin(p)), min(p))


@pytest.mark.parametrize("name", ["correlated", "hierarchy-copula", "mini-synthsaebench"])
def test_pairwise_cofiring(name):
    """Pairs chosen from the world alone (not from the data): in the block worlds every within-block
    pair of the first 8 blocks; in the low-rank world the 40 most correlated pairs among the 64 most
    frequent features, plus the parent-child pairs of the first roots."""
    w, dev, ref = _draws(name)
    if name != "mini-synthsaebench":
        size = w.config.correlation.size
        pairs = torch.tensor([(b * size + i, b * size + j) for b in range(8) for i in range(size)
                              for j in range(i + 1, size)])
    else:
        F = w.state()["corr_factor"][:64]
        C = (F @ F.T).triu(1)
        top = torch.topk(C.flatten(), 40).indices
        pairs = torch.stack([top // 64, top % 64], 1)
        child = (w.parents >= 0).nonzero().squeeze(1)[:24]
        pairs = torch.cat([pairs, torch.stack([w.parents[child], child], 1)])
    # the pairs do co-fire above independence (so the check reads correlation, not only marginals)
    active = ref.codes.active().double()
    joint = (active[:, pairs[:, 0]] * active[:, pairs[:, 1]]).mean(0)
    indep = active[:, pairs[:, 0]].mean(0) * active[:, pairs[:, 1]].mean(0)
    assert float((joint / indep).median()) > 1.2
    p = _cofire_p(dev.codes, ref.codes, pairs)
    assert p.min() > ALPHA / len(pairs), (pairs[int(p.argmin())].tolist(), float(p.min()))


@pytest.mark.parametrize("name", ["hierarchy", "hierarchy-copula", "mini-synthsaebench"])
def test_hierarchy_constraints_exact(name):
    w, dev, _ = _draws(name)
    _hierarchy_ok(w, dev.codes)
    assert int((dev.codes.cols[torch.isin(dev.codes.cols, (w.parents >= 0).nonzero().squeeze(1))]).numel()) > 1000


@pytest.mark.parametrize("name", list(WORLDS))
def test_l0_distribution(name):
    _, dev, ref = _draws(name)
    assert _l0_p(dev.codes, ref.codes) > ALPHA


@pytest.mark.parametrize("name", list(WORLDS))
def test_magnitude_distribution(name):
    """KS per feature: the 4 most frequent features and, with a hierarchy, 4 children (their values
    are scaled by their parent's) with at least 500 events in the reference."""
    w, dev, ref = _draws(name)
    counts = torch.bincount(ref.codes.cols, minlength=w.m)
    features = torch.topk(counts, 4).indices.tolist()
    if w.parents is not None:
        child = ((w.parents >= 0) & (counts >= 500)).nonzero().squeeze(1)
        features += child[:4].tolist()
        assert len(child) >= 4
    p = _magnitude_p(dev.codes, ref.codes, features)
    assert min(p) > ALPHA / len(features), (features, p)


@pytest.mark.parametrize("name", list(WORLDS))
def test_inputs_match(name):
    """x itself: KS of its first coordinate and of its norm (dictionary, bias and noise are applied)."""
    _, dev, ref = _draws(name)
    for fa, fb in ((dev.x[:, 0], ref.x[:, 0]), (dev.x.norm(dim=1), ref.x.norm(dim=1))):
        assert stats.ks_2samp(fa.numpy(), fb.numpy()).pvalue > ALPHA / 2


def test_exactly_k_and_tied_groups():
    """Exactly-k firing: k distinct features per sample, uniform marginals; tied subspace groups fire
    as units whose code norm is the magnitude draw."""
    w = World.preset("aen-spiked")
    codes = sample_codes_on_device(w, 4000, seed=5)
    assert bool((codes.l0() == 16).all())
    counts = torch.bincount(codes.cols, minlength=w.m).numpy()
    p = [stats.binomtest(int(c), 4000, 16 / w.m).pvalue for c in counts]
    assert min(p) > ALPHA / w.m
    w = World.preset("subspaces")
    dev, ref = sample_codes_on_device(w, N, seed=6), w.sample_codes(N, seed=7)
    assert _rates_p(dev, ref, w.m).min() > ALPHA / w.m
    groups = w.groups
    active = dev.active()
    for g in range(int(groups.max()) + 1):
        members = (groups == g).nonzero().squeeze(1)
        on = active[:, members]
        assert bool((on.all(1) | ~on.any(1)).all()), "a tied group fired partly"
    norms = []
    for codes in (dev, ref):
        z = codes.to_dense()[:, groups == 0]
        norms.append(z.norm(dim=1)[z.norm(dim=1) > 0].numpy())
    assert stats.ks_2samp(*norms).pvalue > ALPHA


def test_checks_have_power(monkeypatch):
    """The checks above reject wrong laws at these sizes: the first surviving ME sibling always kept
    (instead of a uniform one) fails the rate check; children not scaled by their parent fail the
    magnitude check; dropping the copula fails the co-firing check."""
    w, _, ref = _draws("hierarchy")

    monkeypatch.setattr(device_sampler, "_uniform_index", lambda count, gen: torch.zeros_like(count))
    biased = sample_codes_on_device(w, N, seed=11)
    monkeypatch.undo()
    assert _rates_p(biased, ref.codes, w.m).min() < ALPHA / w.m
    _hierarchy_ok(w, biased)  # still a valid forest: only the law of the choice is wrong
    monkeypatch.setattr(device_sampler, "_scale_children", lambda plan, rows, cols, values: values)
    w._device_cache.clear()
    unscaled = sample_codes_on_device(w, N, seed=11)
    monkeypatch.undo()
    w._device_cache.clear()
    counts = torch.bincount(ref.codes.cols, minlength=w.m)
    features = torch.topk(counts, 4).indices.tolist() + ((w.parents >= 0) & (counts >= 500)).nonzero()[:4, 0].tolist()
    assert min(_magnitude_p(unscaled, ref.codes, features)) < ALPHA / len(features)
    w2, dev2, ref2 = _draws("correlated")
    independent = World(w2.config.replace(correlation=None))
    pairs = torch.tensor([(b * 4 + i, b * 4 + j) for b in range(8) for i in range(4) for j in range(i + 1, 4)])
    wrong = independent.sample_codes(N, seed=11)
    assert _cofire_p(wrong, ref2.codes, pairs).min() < ALPHA / len(pairs)


@st.composite
def _worlds(draw) -> World:
    """Small worlds of every kind the device sampler handles: independent or copula (block / low-rank)
    firing with rates including 0 and 1, or exactly k; optional forest (any ME share, scaled children);
    magnitudes that may draw 0 (normal_relu); noise and bias."""
    m = draw(st.integers(4, 40))
    d = draw(st.integers(2, 12))
    exactly_k = draw(st.booleans()) and draw(st.booleans())
    if exactly_k:
        return World(WorldConfig(d=d, m=m, firing=ExactlyK(k=draw(st.integers(1, m))),
                                 seed=draw(st.integers(0, 1000))))
    p = draw(st.lists(st.sampled_from([0.0, 1.0, 0.05, 0.3, 0.7]), min_size=m, max_size=m))
    correlation = draw(st.sampled_from([None, Block(size=3, rho=0.7), LowRank(rank=2, scale=0.15)]))
    hierarchy = None
    if draw(st.booleans()):
        hierarchy = HierarchyConfig(roots=draw(st.integers(1, 3)), branching=(1, 3), depth=draw(st.integers(1, 2)),
                                    mutually_exclusive=draw(st.sampled_from([0.0, 0.5, 1.0])),
                                    scale_children_by_parent=draw(st.booleans()))
        if hierarchy.roots * (1 + 3 + 9) > m:
            hierarchy = None
    return World(WorldConfig(d=d, m=m, firing=Vector(p=tuple(p)), correlation=correlation, hierarchy=hierarchy,
                             magnitudes=NormalRelu(mean=1.0, std=draw(st.sampled_from([0.0, 1.0]))),
                             noise=Noise(std=draw(st.sampled_from([0.0, 0.1])), bias_norm=0.5),
                             seed=draw(st.integers(0, 1000))))


@given(world=_worlds(), n=st.integers(1, 300), seed=st.integers(0, 2**32))
def test_structure_of_any_draw(world, n, seed):
    """Every draw is well formed: events sorted by (row, col) without repeats, in range, non-zero finite
    values; rate-1 features fire in every sample and rate-0 ones never (without a forest, whose gates
    and ME choices may switch them off); the forest's constraints hold exactly; x = z D + bias + noise."""
    b = world.sample(n, seed=seed, sampler="device", dtype=torch.float64)
    c = b.codes
    keys = c.rows * world.m + c.cols
    assert bool((keys[1:] > keys[:-1]).all())
    assert c.nnz == 0 or (int(c.rows.min()) >= 0 and int(c.rows.max()) < n and int(c.cols.max()) < world.m)
    assert bool(torch.isfinite(c.values).all()) and bool((c.values != 0).all())
    counts = torch.bincount(c.cols, minlength=world.m)
    if isinstance(world.config.firing, ExactlyK):
        assert bool((c.l0() == world.config.firing.k).all())
    elif world.parents is None:
        q = world.base_probabilities
        zero_draws = world.config.magnitudes.std > 0  # normal_relu may draw 0: "did not fire"
        assert bool((counts[q == 0] == 0).all())
        assert zero_draws or bool((counts[q == 1] == n).all())
    else:
        h = world.config.hierarchy
        _hierarchy_ok(world, c, parents_kept=world.config.magnitudes.std == 0 or h.scale_children_by_parent)
    clean = c.to_dense() @ world.dictionary.double() + world.bias.double()
    assert torch.allclose(b.x - b.noise, clean, atol=1e-5)


def test_scaling_matches_reference_exactly():
    """The device sampler's scaling of children (all levels at once) equals the reference's (level by
    level) on the same events and raw values."""
    w = _hierarchy()
    codes = sample_codes_on_device(w, 2000, seed=3)
    raw = torch.rand(codes.nnz, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5
    plan = device_sampler.device_plan(w, "cpu")
    ours = device_sampler._scale_children(plan, codes.rows, codes.cols, raw.clone())
    theirs = w._scale_children(codes.rows, codes.cols, raw.clone())
    assert w._forest.depth == 2 and not torch.equal(ours, raw)
    assert torch.allclose(ours, theirs, rtol=1e-14, atol=0)


# ---- determinism and API -----------------------------------------------------------------------------
def test_same_seed_same_samples_on_cpu():
    w = _mini_synthsaebench()
    a, b = w.sample(3000, seed=4, sampler="device"), w.sample(3000, seed=4, sampler="device")
    assert torch.equal(a.x, b.x) and torch.equal(a.codes.rows, b.codes.rows)
    assert torch.equal(a.codes.cols, b.codes.cols) and torch.equal(a.codes.values, b.codes.values)
    c = w.sample(3000, seed=5, sampler="device")
    assert not torch.equal(a.codes.cols, c.codes.cols)
    s1, s2 = w.stream(500, seed=4, sampler="device"), w.stream(500, seed=4, sampler="device")
    first, again = next(s1), next(s2)
    assert torch.equal(first.x, again.x) and not torch.equal(first.x, next(s1).x)


def test_chunks_are_sorted_and_consistent(monkeypatch):
    """Drawn in many small chunks, the codes stay sorted by (row, col), with rows offset per chunk."""
    w = _hierarchy()
    monkeypatch.setitem(device_sampler.CHUNK_ENTRIES, "cpu", 257 * 37)  # 37 rows per chunk
    monkeypatch.setattr(device_sampler, "CHUNK_ENTRIES_DEFAULT", 257 * 37)
    w._device_cache.clear()
    codes = sample_codes_on_device(w, 1000, seed=2)
    keys = codes.rows * w.m + codes.cols
    assert bool((keys[1:] > keys[:-1]).all()) and int(codes.rows.max()) == 999
    assert bool((codes.l0()[:37] > 0).any()) and bool((codes.l0()[-37:] > 0).any())
    _hierarchy_ok(w, codes)


def test_batch_matches_reference_layout():
    """Same Batch object as the reference: x = z D + bias + noise, codes sorted, dtypes as asked."""
    w = _mini_synthsaebench()
    b = w.sample(500, seed=0, sampler="device", dtype=torch.float64)
    assert b.x.shape == (500, w.d) and b.x.dtype == torch.float64 and b.codes.values.dtype == torch.float64
    clean = b.codes.to_dense() @ w.dictionary.double() + w.bias.double()
    assert torch.allclose(b.x - b.noise, clean, atol=1e-5)
    assert 0.03 < float(b.noise.std()) < 0.07


def test_sampler_selection():
    w = World.preset("toy")
    ref = w.sample(200, seed=3)
    assert torch.equal(w.sample(200, seed=3, sampler="reference").x, ref.x)
    assert torch.equal(w.sample(200, seed=3, device="cpu", sampler="auto").x, ref.x)  # auto: reference on CPU
    assert not torch.equal(w.sample(200, seed=3, sampler="device").x, ref.x)
    assert uses_device_sampler("auto", torch.device("cuda")) and not uses_device_sampler("auto", torch.device("cpu"))
    with pytest.raises(ValueError, match="sampler = 'gpu' is invalid"):
        w.sample(10, sampler="gpu")
    with pytest.raises(ValueError, match="sampler"):
        next(w.stream(10, sampler=None))


def test_generator_on_another_device_is_refused():
    with pytest.raises(ValueError, match="seed = .*torch.Generator on cpu.*device sampler draws on cuda"):
        device_generator(torch.Generator(), torch.device("cuda"))
    g = torch.Generator()
    assert device_generator(g, torch.device("cpu")) is g
    with pytest.raises(ValueError, match="n = 0 is invalid"):
        sample_codes_on_device(World.preset("toy"), 0)


# ---- on a GPU (benchmarks/gpu_check.sh runs these) ---------------------------------------------------
@pytest.mark.gpu
def test_cuda_sampler_law_and_determinism():
    w = _mini_synthsaebench()
    a = w.sample(N, seed=11, device="cuda")  # auto: the device sampler on CUDA
    assert a.x.device.type == "cuda" and a.codes.rows.device.type == "cuda"
    again = w.sample(N, seed=11, device="cuda")
    assert torch.equal(a.codes.cols, again.codes.cols) and torch.equal(a.codes.values, again.codes.values)
    assert torch.allclose(a.x, again.x, atol=1e-5)  # (the sparse product may sum in another order)
    codes = a.codes.to("cpu")
    keys = codes.rows * w.m + codes.cols
    assert bool((keys[1:] > keys[:-1]).all())
    _hierarchy_ok(w, codes)
    ref = w.sample_codes(N, seed=12)
    assert _rates_p(codes, ref, w.m).min() > ALPHA / w.m
    assert _l0_p(codes, ref) > ALPHA
    with pytest.raises(ValueError, match="torch.Generator on cpu"):
        w.sample(10, seed=torch.Generator(), device="cuda")
    batch = next(w.stream(256, seed=0, device="cuda"))
    assert batch.x.device.type == "cuda"
