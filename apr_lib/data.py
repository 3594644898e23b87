"""Datasets: where their files come from (`ensure_dataset`) and reading one split as uint8 tensors (`load_split`).

Files lie in torchvision's layout under the profile's data root: `<root>/FashionMNIST/raw/` (the four decompressed
IDX files, read here as torchvision reads them), `<root>/cifar-10-batches-py/`, `<root>/cifar-100-python/` (read by
torchvision's dataset classes). Everything written here goes through a temporary file and a rename, so an
interrupted fetch never leaves a file that looks complete.

torchvision is imported only where CIFAR or a download needs it: importing it costs about 2 s of CPU time, and every
training and evaluation job of the DAG reads a dataset.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from apr_lib.errors import DataMissingError, UserError
from apr_lib.files import atomic_path, write_text


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    channels: int
    size: int  # height = width, in pixels
    mean: tuple[float, ...]  # per channel, of images in [0, 1]
    std: tuple[float, ...]
    classes: tuple[str, ...] | None  # None: read from the dataset's meta file by load_split


# CIFAR-100 shares CIFAR-10's mean and std because the released APR code normalises both with them.
_CIFAR_MEAN, _CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
DATASETS = {
    "fmnist": DatasetInfo("fmnist", 10, 1, 28, (0.2860,), (0.3530,), (  # torchvision's FashionMNIST.classes
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")),
    "cifar10": DatasetInfo("cifar10", 10, 3, 32, _CIFAR_MEAN, _CIFAR_STD, (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
    "cifar100": DatasetInfo("cifar100", 100, 3, 32, _CIFAR_MEAN, _CIFAR_STD, None),
    # torchvision's ImageNet mean and std, as the released `imagenet.py` normalises; 224 = its crop size.
    "imagenet": DatasetInfo("imagenet", 1000, 3, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), None),
}
# Datasets too big for memory: image folders <root>/<folder>/{train,val}/<class folder>/<image>, read image by
# image (apr_lib.distributed) instead of by load_split.
IMAGE_FOLDERS = {"imagenet": "imagenet"}
IMAGENET_HOME = "https://image-net.org/download-images.php"

DEBIAN_PACKAGE = "dataset-fashion-mnist"
_PACKAGE_DATA_DIR = "usr/share/datasets/fashion-mnist"  # where the package puts its .gz files
DEBIAN_DIR = Path("/") / _PACKAGE_DATA_DIR  # a module constant so tests can point it elsewhere
# The decompressed IDX files torchvision reads, with their magic numbers (uint8 data; 3-D images, 1-D labels).
FMNIST_FILES = {
    "train-images-idx3-ubyte": 0x00000803,
    "train-labels-idx1-ubyte": 0x00000801,
    "t10k-images-idx3-ubyte": 0x00000803,
    "t10k-labels-idx1-ubyte": 0x00000801,
}
SOURCE_RECORD = "SOURCE.txt"  # beside FashionMNIST/raw/: how the files were fetched
_CIFAR_READERS = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}  # torchvision.datasets' classes
CIFAR_HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8 (N, C, H, W), contiguous
    labels: torch.Tensor  # int64 (N,)
    classes: list[str]


class _StepFailed(Exception):
    """One way of finding Fashion-MNIST did not work; the message says why (the next way is tried)."""


def ensure_dataset(name: str, root: str | os.PathLike) -> dict:
    """Make sure dataset `name` is under `root`, fetching it if needed; return where its files came from.

    The provenance dict holds `dataset`, `root`, `source` (a sentence) and `files`
    (path relative to `root` -> {"sha256", "size" in bytes}).
    """
    root = Path(root)
    if name in IMAGE_FOLDERS:  # 1.3 million files: their class folders are checked, not hashed
        splits = {split: image_folder_dir(name, root, split == "train") for split in ("train", "val")}
        classes = {split: sum(1 for d in folder.iterdir() if d.is_dir()) for split, folder in splits.items()}
        return {"dataset": name, "root": str(root), "files": {},
                "source": f"image folders already present: {splits['train']} ({classes['train']} classes), "
                          f"{splits['val']} ({classes['val']} classes)"}
    if name == "fmnist":
        source, folder, names = _ensure_fmnist(root), root / "FashionMNIST" / "raw", list(FMNIST_FILES)
    else:
        reader = _cifar_reader(name)
        source, folder, names = _ensure_cifar(reader, root), root / reader.base_folder, _cifar_files(reader)
    files = {
        (folder / n).relative_to(root).as_posix(): {"sha256": _sha256(folder / n), "size": (folder / n).stat().st_size}
        for n in names
    }
    return {"dataset": name, "root": str(root), "source": source, "files": files}


def load_split(name: str, root: str | os.PathLike, train: bool) -> ImageSet:
    """Read the train or test split of dataset `name` from `root` (no fetching: call ensure_dataset first)."""
    root = Path(root)
    if name in IMAGE_FOLDERS:
        raise UserError(f"{name} is too big to load whole: it is read image by image from "
                        f"{image_folder_dir(name, root, train)} (apr_lib.distributed.image_folder); this step of the "
                        "pipeline supports in-memory datasets only")
    if name == "fmnist":
        raw = root / "FashionMNIST" / "raw"
        if problems := _fmnist_problems(raw):
            raise DataMissingError(
                f"Fashion-MNIST is not ready in {raw} ({problems}). "
                f"Run `apr data prepare --profile <profile>` or apr_lib.data.ensure_dataset('fmnist', {str(root)!r}) "
                "first: it finds or fetches the files.")
        prefix = "train" if train else "t10k"
        images = torch.from_numpy(_read_idx(raw / f"{prefix}-images-idx3-ubyte")).unsqueeze(1).contiguous()
        labels = torch.from_numpy(_read_idx(raw / f"{prefix}-labels-idx1-ubyte")).to(torch.int64)
        return ImageSet(images=images, labels=labels, classes=list(DATASETS[name].classes))
    else:
        reader = _cifar_reader(name)
        if problems := _cifar_problems(reader, root):
            raise DataMissingError(_cifar_missing_message(reader, root, problems))
        dataset = reader(root, train=train, download=False)
        # torchvision keeps CIFAR as one (N, H, W, C) array; one permute gives the (N, C, H, W) layout.
        images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
        labels = torch.tensor(dataset.targets, dtype=torch.int64)
    return ImageSet(images=images, labels=labels, classes=list(dataset.classes))


def subset_indices(n: int, subset: int | None, seed: int = 0) -> torch.Tensor:
    """A fixed random subset of range(n) (the same for every method and seed, so runs are comparable)."""
    if subset is None or subset >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:subset].sort().values


def image_folder_dir(name: str, root: str | os.PathLike, train: bool) -> Path:
    """The train or val folder of an image-folder dataset (IMAGE_FOLDERS); a DataMissingError if it is absent."""
    folder = Path(root) / IMAGE_FOLDERS[name] / ("train" if train else "val")
    if not folder.is_dir() or not any(d.is_dir() for d in folder.iterdir()):
        raise DataMissingError(
            f"{folder} is missing or holds no class folders. ImageNet (ILSVRC-2012) cannot be downloaded "
            f"automatically: register at {IMAGENET_HOME}, download the training and validation archives, and unpack "
            f"them to {folder.parent}/train/<wnid>/*.JPEG and {folder.parent}/val/<wnid>/*.JPEG (the validation "
            "images sorted into their class folders, e.g. with pytorch/examples' imagenet/extract_ILSVRC.sh); "
            "or set the profile's data_root to the folder that holds imagenet/.")
    return folder


# ---- Fashion-MNIST: files already there, Debian's package, apt-get download, torchvision's download ----

def _ensure_fmnist(root: Path) -> str:
    raw = root / "FashionMNIST" / "raw"
    steps = [  # built per call so that tests can replace any step
        (f"files already in {raw}", _use_existing_files),
        (f"Debian's {DEBIAN_PACKAGE} files in {DEBIAN_DIR}", _decompress_from_debian_dir),
        (f"apt-get download {DEBIAN_PACKAGE} + dpkg-deb -x (needs no root)", _fetch_with_apt),
        ("torchvision's download (FashionMNIST(root, download=True))", _download_fmnist_with_torchvision),
    ]
    tried = []
    for number, (description, step) in enumerate(steps, start=1):
        try:
            source = step(raw)
        except _StepFailed as failure:
            tried.append(f"  {number}. {description}: {failure}")
            continue
        if number > 1:  # fetched now: remember where from, for the provenance of later runs
            write_text(raw.parent / SOURCE_RECORD, source + "\n")
        return source
    raise DataMissingError(
        f"Fashion-MNIST is not in {raw} and could not be fetched. Tried, in order:\n" + "\n".join(tried) + "\n"
        f"Fix: run `sudo apt-get install {DEBIAN_PACKAGE}` (Debian/Ubuntu), or put the four decompressed files "
        f"{', '.join(FMNIST_FILES)} in {raw}/ (or set the profile's data_root to a folder whose "
        f"FashionMNIST/raw/ holds them), then run again.")


def _use_existing_files(raw: Path) -> str:
    if problems := _fmnist_problems(raw):
        raise _StepFailed(problems)
    record = raw.parent / SOURCE_RECORD
    fetched = f"; earlier {record.read_text(encoding='utf-8').strip()}" if record.is_file() else ""
    return f"already present in {raw}{fetched}"


def _decompress_from_debian_dir(raw: Path) -> str:
    _decompress_idx_files(DEBIAN_DIR, raw)
    return f"decompressed from the files of Debian's package {DEBIAN_PACKAGE} in {DEBIAN_DIR}"


def _fetch_with_apt(raw: Path) -> str:
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        raise _StepFailed("apt-get or dpkg-deb is not on PATH")
    with tempfile.TemporaryDirectory(prefix="apr-fmnist-deb-") as tmp:
        _run(["apt-get", "download", DEBIAN_PACKAGE], cwd=tmp)
        debs = sorted(Path(tmp).glob("*.deb"))
        if not debs:
            raise _StepFailed("apt-get download left no .deb file")
        _run(["dpkg-deb", "-x", str(debs[0]), "unpacked"], cwd=tmp)
        _decompress_idx_files(Path(tmp, "unpacked", _PACKAGE_DATA_DIR), raw)
    return (f"decompressed from {debs[0].name}, fetched with `apt-get download {DEBIAN_PACKAGE}` "
            "and unpacked with dpkg-deb -x")


def _download_fmnist_with_torchvision(raw: Path) -> str:
    from torchvision.datasets import FashionMNIST  # slow to import (module docstring): only this step needs it
    try:
        _download_with_torchvision(FashionMNIST, raw.parent.parent, "FashionMNIST/raw", list(FMNIST_FILES))
    except (OSError, RuntimeError) as failure:  # no network, a dropped connection, a bad checksum
        raise _StepFailed(" ".join(str(failure).split())) from failure
    return f"downloaded by torchvision from {FashionMNIST.mirrors[0]}"


def _fmnist_problems(raw: Path) -> str:
    """What is wrong with the four IDX files in `raw` ("" when nothing is)."""
    if not raw.is_dir():
        return "no such folder"
    problems = [f"{n} {p}" for n, magic in FMNIST_FILES.items() if (p := _idx_problem(raw / n, magic))]
    return "; ".join(problems)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file's uint8 array in the shape its header gives (checked by _idx_problem first)."""
    data = path.read_bytes()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims).copy()


def _idx_problem(path: Path, magic: int) -> str | None:
    """Why `path` is not a complete IDX file with this magic number, or None. Reads the header only."""
    if not path.is_file():
        return "missing"
    ndim = magic & 0xFF
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    if len(header) < 4 + 4 * ndim or int.from_bytes(header[:4], "big") != magic:
        return f"is not an IDX file (magic number should be {magic:#010x})"
    dims = [int.from_bytes(header[i:i + 4], "big") for i in range(4, len(header), 4)]
    if path.stat().st_size != len(header) + math.prod(dims):
        return f"is truncated or padded (its header says {'x'.join(map(str, dims))} bytes of data)"
    return None


def _decompress_idx_files(gz_dir: Path, raw: Path) -> None:
    if not gz_dir.is_dir():
        raise _StepFailed("no such folder")
    sources = {n: gz_dir / f"{n}.gz" for n in FMNIST_FILES}
    if missing := [str(p) for p in sources.values() if not p.is_file()]:
        raise _StepFailed(f"not found: {', '.join(missing)}")
    for name, source in sources.items():
        with atomic_path(raw / name) as tmp:
            try:
                with gzip.open(source, "rb") as packed, open(tmp, "wb") as out:
                    shutil.copyfileobj(packed, out, 1 << 20)
            except (OSError, EOFError) as failure:  # a corrupt or truncated .gz
                raise _StepFailed(f"cannot decompress {source}: {failure}") from failure
            if problem := _idx_problem(tmp, FMNIST_FILES[name]):
                raise _StepFailed(f"{source} decompressed {problem}")


def _run(command: list[str], cwd: str) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True, timeout=600)
    except subprocess.CalledProcessError as failure:
        raise _StepFailed(f"`{' '.join(command)}` failed: {failure.stderr.strip()[-300:]}") from failure
    except subprocess.TimeoutExpired as failure:
        raise _StepFailed(f"`{' '.join(command)}` took longer than {failure.timeout:.0f} s") from failure


# ---- CIFAR ----

def _cifar_reader(name: str) -> type:
    """torchvision's dataset class of a CIFAR dataset (its files, md5s and reader)."""
    if name not in _CIFAR_READERS:
        raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    import torchvision.datasets  # slow to import (module docstring): only CIFAR needs it
    return getattr(torchvision.datasets, _CIFAR_READERS[name])


def _cifar_files(reader: type) -> list[str]:
    return [n for n, _ in reader.train_list + reader.test_list] + [reader.meta["filename"]]


def _cifar_problems(reader: type, root: Path) -> str:
    """What is wrong with the CIFAR files under `root`, judged by torchvision's md5 list ("" when nothing is)."""
    from torchvision.datasets.utils import check_integrity  # slow to import (module docstring): CIFAR only
    folder = root / reader.base_folder
    md5s = dict(reader.train_list + reader.test_list) | {reader.meta["filename"]: reader.meta["md5"]}
    problems = [
        f"{n} missing" if not (folder / n).is_file() else f"{n} fails torchvision's md5 check"
        for n, md5 in md5s.items() if not check_integrity(str(folder / n), md5)
    ]
    return "; ".join(problems)


def _ensure_cifar(reader: type, root: Path) -> str:
    if not (problems := _cifar_problems(reader, root)):
        return f"already present in {root / reader.base_folder}"
    try:
        _download_with_torchvision(reader, root, reader.base_folder, _cifar_files(reader))
    except (OSError, RuntimeError) as failure:
        download = " ".join(str(failure).split())
        raise DataMissingError(_cifar_missing_message(reader, root, problems, download)) from failure
    return f"downloaded by torchvision from {reader.url}"


def _cifar_missing_message(reader: type, root: Path, problems: str, download: str = "") -> str:
    title = reader.__name__.replace("CIFAR", "CIFAR-")
    tried = f"torchvision's download from {reader.url} failed: {download}\n" if download else ""
    return (
        f"{title} is not ready in {root / reader.base_folder}/ ({problems}).\n{tried}"
        f"Fix: download the \"{title} python version\" ({reader.filename}) from {CIFAR_HOME} and extract it "
        f"into {root}/, so that {root / reader.base_folder}/ holds {', '.join(_cifar_files(reader))}; "
        f"or set the profile's data_root to the folder that contains {reader.base_folder}/.")


# ---- shared ----

def _download_with_torchvision(reader: type, root: Path, folder: str, names: list[str]) -> None:
    """Let torchvision download into a temporary folder inside `root`, then rename each finished file into
    place: torchvision writes its targets directly, and renames within one file system are atomic."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=".download-") as tmp:
        reader(tmp, train=False, download=True)  # also checks torchvision's md5s
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(Path(tmp, folder, name), root / folder / name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
