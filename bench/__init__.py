"""Load generator and measurements for a running deployment (see bench/README.md)."""
