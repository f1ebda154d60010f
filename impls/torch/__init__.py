"""PyTorch implementations."""
