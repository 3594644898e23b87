"""Optional dependencies: what a core module needs in one function only, from an extra of the install.

The core install (`pip install apr-companion`) brings torch, torchvision, numpy, scipy, Pillow and tqdm. A few
functions need more (scikit-image for three corruptions and the blobs OOD set, scikit-learn for OOD metrics and the
digits set, pyautoattack for AutoAttack); they import it through `require`, which names the extra to install.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from apr_lib.errors import UserError

PACKAGES = {"skimage": "scikit-image", "sklearn": "scikit-learn", "pyautoattack": "pyautoattack"}


class MissingExtraError(UserError):
    """A function needs a package that only an extra of the install brings."""


def require(module: str, extra: str = "pipeline") -> ModuleType:
    """`module`, imported; if its package is not installed, an error naming it and the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as missing:
        top = module.partition(".")[0]
        if missing.name is None or missing.name.partition(".")[0] != top:
            raise  # the package is there but one of its own dependencies is broken: not ours to explain
        raise MissingExtraError(f"{module} is not installed: this function needs {PACKAGES.get(top, top)}, which "
                                f"the [{extra}] extra brings: pip install \"apr-companion[{extra}]\"") from None
