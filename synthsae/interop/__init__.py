"""Interoperability with other libraries (no hard dependency on them).

SAELens (`sae-lens`): worlds from its synthetic models and SAEs to and from its on-disk format.

    from synthsae.interop import world_from_saelens, load_saelens_world, load_saelens_sae, save_saelens_sae
"""

from synthsae.interop.saelens_world import (SAELensCompatibilityWarning, load_saelens_world, read_saelens_config,
                                            world_from_saelens)
from synthsae.interop.saelens_sae import load_saelens_sae, save_saelens_sae, saelens_config

__all__ = ["world_from_saelens", "load_saelens_world", "read_saelens_config", "SAELensCompatibilityWarning",
           "load_saelens_sae", "save_saelens_sae", "saelens_config"]
