"""Integrations with other systems (Dask)."""
