"""Ground-truth evaluation of SAEs: `evaluate(sae, world) -> Report` and every metric on its own.

Conventions: dictionaries are (m, d) with atoms as **rows** (a world's D, an SAE's W_dec); a
sample is x = z D (+ noise). Definitions of every metric: docs/metrics.md.

`evaluate` is a loop over the metric families of `FAMILIES` (one file each in `families/`); every
Report key is declared there with its doc line and section. `HEADLINE` ((title, key) pairs) and
`PLOTTED` (keys) are the columns of comparison tables and the metrics sweeps plot, derived from it.
"""

from synthsae.metrics.absorption import AbsorptionAccumulator, splitting
from synthsae.metrics.adapters import LinearSAE, as_sae
from synthsae.metrics.amortization import amortization_gap, exact_map_lipschitz
from synthsae.metrics.downstream import DownstreamAccumulator, DownstreamReadout
from synthsae.metrics.evaluate import METRICS, EvalConfig, evaluate
from synthsae.metrics.family import (
    FAMILIES,
    EvalBatch,
    EvalContext,
    Family,
    MetricKey,
    Output,
    all_keys,
    all_families,
    headline,
    key_spec,
    plotted,
    register,
    sections,
)
from synthsae.metrics.lipschitz import encoder_lipschitz, jacobian_norms, pair_ratios
from synthsae.metrics.matching import Matching, cosine_matrix, cosine_summary, hungarian_match, mcc, mmcs
from synthsae.metrics.reconstruction import ReconstructionAccumulator, explained_variance, latent_usage
from synthsae.metrics.recovery import (
    FiringAccumulator,
    expected_max_abs_cos,
    feature_uniqueness,
    recovery_curve,
    recovery_rate,
)
from synthsae.metrics.report import SECTIONS, Report, format_value, from_csv, jsonable, rows_to_csv, to_csv
from synthsae.metrics.stability import StabilityResult, reappearance, stability
from synthsae.metrics.steering import steering_fidelity
from synthsae.metrics.subspaces import cross_seed_subspace_angles, group_subspace_recovery, principal_angles

HEADLINE = headline()  # (column title, Report key) of comparison tables (run, sweep)
PLOTTED = plotted()  # Report keys a sweep plots against each swept parameter

__all__ = [
    "FAMILIES", "HEADLINE", "PLOTTED", "SECTIONS", "EvalBatch", "EvalContext", "Family", "MetricKey", "Output",
    "all_keys", "all_families", "format_value", "from_csv", "headline", "jsonable", "key_spec", "plotted", "register",
    "rows_to_csv", "sections", "to_csv",
    "AbsorptionAccumulator", "DownstreamAccumulator", "DownstreamReadout", "EvalConfig", "FiringAccumulator",
    "LinearSAE", "METRICS", "amortization_gap", "exact_map_lipschitz", "Matching", "ReconstructionAccumulator", "Report", "StabilityResult", "as_sae",
    "cosine_matrix", "cosine_summary", "cross_seed_subspace_angles", "encoder_lipschitz", "evaluate",
    "expected_max_abs_cos", "explained_variance", "feature_uniqueness", "group_subspace_recovery",
    "hungarian_match", "jacobian_norms", "latent_usage", "mcc", "mmcs", "pair_ratios", "principal_angles",
    "reappearance", "recovery_curve", "recovery_rate", "splitting", "stability", "steering_fidelity",
]
