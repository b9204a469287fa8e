"""Faults the lab can inject into a running system: Dask workers, tasks, the network, Redis."""
