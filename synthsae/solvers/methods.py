"""Registry of sparse-coding methods: name -> solve(problem, *, max_iter, init) -> (z, iterations)."""

from synthsae.registry import Registry

METHODS: Registry = Registry("sparse-coding method")
