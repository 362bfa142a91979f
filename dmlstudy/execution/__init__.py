"""Running the study: notebooks through papermill (and the process lifeline), the fan-out of DVC
stages over dask workers, DDP, code fingerprints for DVC, the paper-grade study, `make compare`."""
