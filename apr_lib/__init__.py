"""APR companion: Amplitude-Phase Recombination (Chen et al., ICCV 2021) as a library.

    from apr_lib.spectral import swap_amplitude      # Eq. (5)
    from apr_lib.augment import APRP, APRS           # batched augmentations
    from apr_lib import load_run                     # a trained run's model and config
"""
from apr_lib.runs import load_run

__all__ = ["load_run"]
