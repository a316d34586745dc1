"""Published reference numbers that recipes and `synthsae bench` compare against (one copy).

SYNTHSAEBENCH: the SynthSAEBench-16k results (SAELens docs `synth_sae_bench.md`; world
`synth-sae-bench-16k-v2`, SAE width 4096, 200M samples, batch 1024, lr 3e-4, evaluated on 1M samples),
mean over 5 seeds (std <= 0.007): L0 -> architecture (our variant names) -> metric -> value.
"""

from __future__ import annotations

SYNTHSAEBENCH: dict[int, dict[str, dict[str, float]]] = {
    25: {"batchtopk": {"f1": 0.7316, "mcc": 0.7574, "uniqueness": 0.9837, "ev": 0.7923},
         "matryoshka": {"f1": 0.8793, "mcc": 0.7927, "uniqueness": 0.9987, "ev": 0.7792},
         "matching_pursuit": {"f1": 0.4464, "mcc": 0.6930, "uniqueness": 0.8281, "ev": 0.8351},
         "relu_l1": {"f1": 0.5562, "mcc": 0.6039, "uniqueness": 0.8976, "ev": 0.7654},
         "jumprelu": {"f1": 0.7317, "mcc": 0.7527, "uniqueness": 0.9885, "ev": 0.7951}},
    20: {"batchtopk": {"f1": 0.8183, "mcc": 0.7526, "uniqueness": 0.9760, "ev": 0.7889},
         "matryoshka": {"f1": 0.8601, "mcc": 0.7455, "uniqueness": 0.9874, "ev": 0.7699},
         "matching_pursuit": {"f1": 0.4439, "mcc": 0.6748, "uniqueness": 0.7552, "ev": 0.8267},
         "relu_l1": {"f1": 0.5777, "mcc": 0.5834, "uniqueness": 0.8528, "ev": 0.7501},
         "jumprelu": {"f1": 0.8241, "mcc": 0.7434, "uniqueness": 0.9781, "ev": 0.7906}},
}
