"""Per-image results of an evaluation suite, in a compact file beside its metrics file
(outputs/<profile>/metrics/<run>/<suite>.npz beside <suite>.json).

Which test images the model classifies correctly and its OOD scores per image, so that any comparison can be
resampled over the same test images without running a model again (apr_lib.uncertainty). Booleans are bit-packed
(with their shape), scores float32, the file compressed (numpy's .npz) and written atomically (apr_lib.files).

What each suite keeps (apr_lib.evaluate):
- clean:      correct (N,), the profile's test images in order;
- corruption: correct (corruptions, severities, N), with `corruptions` and `severities` naming the axes; image i is the
              same test image under every corruption and severity;
- ood:        <set>__msp_log_odds and <set>__max_logit (N_set,) for `in` (the test images) and each OOD set of
              `sets`: log(msp / (1 - msp)), the maximum softmax probability's log-odds (ranks images as msp does,
              without saturating at 1 in float32), and the maximum logit;
- autoattack: clean (N,) and robust__<attack> (N,) after each attack of `attacks`, the first N test images.
"""
from __future__ import annotations

import os

import numpy as np

from apr_lib.files import atomic_path

SHAPE = "__shape"  # key suffix of a bit-packed boolean array's shape


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` (booleans bit-packed, floats as float32) to the .npz file `path`, atomically."""
    stored = {}
    for key, value in arrays.items():
        value = np.asarray(value)
        if value.dtype == bool:
            stored[key], stored[key + SHAPE] = np.packbits(value.ravel()), np.array(value.shape, np.int64)
        elif np.issubdtype(value.dtype, np.floating):
            stored[key] = value.astype(np.float32)
        else:
            stored[key] = value
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **stored)


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays `save` wrote, booleans unpacked to their shapes."""
    with np.load(path, allow_pickle=False) as stored:
        raw = {key: stored[key] for key in stored.files}
    arrays = {}
    for key, value in raw.items():
        if key.endswith(SHAPE):
            continue
        if key + SHAPE in raw:
            shape = tuple(raw[key + SHAPE])
            value = np.unpackbits(value, count=int(np.prod(shape))).astype(bool).reshape(shape)
        arrays[key] = value
    return arrays
