"""JAX implementations."""
