"""APR companion: Amplitude-Phase Recombination (Chen et al., ICCV 2021) as a library.

    from apr_lib.spectral import swap_amplitude      # Eq. (5)
    from apr_lib.augment import APRP, APRS           # batched augmentations
    from apr_lib import load_run                     # a trained run's model and config

Three layers, imports pointing one way (paper -> study -> core; tests/test_layers.py checks it):
- core, the modules of this package: spectra, augmentations, models, training methods, corruptions, datasets, OOD
  sets, metrics, training and evaluation of one run, checkpoints. Needs torch, torchvision, numpy (the plain install).
- apr_lib.study: profiles and their validation, run names, the DAG's targets and jobs. Imports no torch.
- apr_lib.paper: the paper's numbers, one module per section of the paper, tables, claims, index, manifest, explorer.
The command line (apr_lib.cli), the Snakefile and the notebooks sit on top.
"""


def __getattr__(name: str):
    if name == "load_run":
        from apr_lib.runs import load_run  # on first use: `import apr_lib.study` must not import torch
        return load_run
    raise AttributeError(f"module 'apr_lib' has no attribute {name!r}")


__all__ = ["load_run"]
