"""Bench tests register user SAE classes (`synthsae.bench.saes.resolve`); undo that after each
module so no other test sees them in `synthsae.sae.available()`."""

import pytest


@pytest.fixture(autouse=True, scope="module")
def _restore_sae_registry():
    from synthsae.sae.base import SAE_CONFIGS, SAES

    saved = dict(SAES._items), dict(SAE_CONFIGS._items)
    yield
    SAES._items.clear()
    SAES._items.update(saved[0])
    SAE_CONFIGS._items.clear()
    SAE_CONFIGS._items.update(saved[1])
