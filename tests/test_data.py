"""apr_lib.data on small files written in the real formats (IDX, CIFAR pickles), read by the real loaders.

CIFAR and md5: torchvision's CIFAR classes check every file against the md5 of the official release, which
generated files cannot match. The tests replace only those expected md5s (the class attributes `train_list`,
`test_list`, `meta`) with the md5s of the generated files, so torchvision's own integrity check and reader
run unchanged, and the library needs no switch to skip checks. One test keeps the official md5s and shows
that such files are refused.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.utils
from torchvision.datasets import CIFAR10, CIFAR100

from apr_lib import data
from apr_lib.errors import DataMissingError

rng = np.random.default_rng(0)


# ---- writers of the real formats ----

def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: magic 0x000008 (uint8) + number of dimensions, big-endian int32 sizes, then the data row-major."""
    return struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def fake_fmnist() -> dict[str, np.ndarray]:
    arrays = {}
    for split, n in (("train", 5), ("t10k", 3)):
        arrays[f"{split}-images-idx3-ubyte"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}-labels-idx1-ubyte"] = rng.integers(0, 10, n, dtype=np.uint8)
    return arrays


def write_idx_files(folder: Path, arrays: dict[str, np.ndarray], gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
        else:
            (folder / name).write_bytes(idx_bytes(array))


class Py2Str(bytes):
    """A Python 2 `str`. The official CIFAR pickles come from Python 2, so their keys and names are such
    strings: torchvision reads them with encoding="latin1" (keys 'data'), the Toronto page's snippet with
    encoding="bytes" (keys b'data'). Python 3 cannot write them, hence this small pickler."""


class Py2Pickler(pickle._Pickler):  # the pure-Python pickler, whose dispatch table can be extended
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: Py2Str) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + bytes(obj))

    dispatch[Py2Str] = save_py2_str


def write_py2_pickle(path: Path, obj: dict) -> None:
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue())


def cifar_batch(n: int, label_key: str, num_classes: int) -> dict:
    return {
        Py2Str(b"batch_label"): Py2Str(b"generated batch"),
        Py2Str(label_key.encode()): [int(x) for x in rng.integers(0, num_classes, n)],
        Py2Str(b"data"): rng.integers(0, 256, (n, 3072), dtype=np.uint8),  # per row: 1024 R, 1024 G, 1024 B
        Py2Str(b"filenames"): [Py2Str(b"img_%d.png" % i) for i in range(n)],
    }


def write_cifar(root: Path, reader: type[CIFAR10], batches: dict[str, dict], meta: dict, monkeypatch) -> None:
    """Write the batches and meta file, and make torchvision expect their md5s (see the module docstring)."""
    folder = root / reader.base_folder
    folder.mkdir(parents=True)
    for name, obj in {**batches, reader.meta["filename"]: meta}.items():
        write_py2_pickle(folder / name, obj)
    md5 = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in batches}
    monkeypatch.setattr(reader, "train_list", [[n, md5[n]] for n, _ in reader.train_list])
    monkeypatch.setattr(reader, "test_list", [[n, md5[n]] for n, _ in reader.test_list])
    meta_md5 = hashlib.md5((folder / reader.meta["filename"]).read_bytes()).hexdigest()
    monkeypatch.setattr(reader, "meta", {**reader.meta, "md5": meta_md5})


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# ---- fixtures ----

@pytest.fixture
def no_debian_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_DIR", tmp_path / "no-such-debian-dir")


@pytest.fixture
def no_apt(tmp_path, monkeypatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


@pytest.fixture
def dropped_connections(monkeypatch):
    """Every download sends a few bytes, then the connection drops: torchvision has by then written a partial
    file where the finished one belongs."""

    class Response:
        def __init__(self, request):
            self.url, self.length, self.sent = request.full_url, 10_000, False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, size=-1):
            if self.sent:
                raise ConnectionResetError("connection dropped (simulated)")
            self.sent = True
            return b"\x1f\x8b partial"

    monkeypatch.setattr(torchvision.datasets.utils.urllib.request, "urlopen", lambda request, **_: Response(request))


# ---- Fashion-MNIST ----

def assert_split_equals(root: Path, arrays: dict[str, np.ndarray]) -> None:
    for train, split in ((True, "train"), (False, "t10k")):
        got = data.load_split("fmnist", root, train=train)
        expected = torch.from_numpy(arrays[f"{split}-images-idx3-ubyte"]).unsqueeze(1)
        assert got.images.dtype == torch.uint8 and got.images.is_contiguous()
        assert torch.equal(got.images, expected)
        assert got.labels.dtype == torch.int64
        assert got.labels.tolist() == arrays[f"{split}-labels-idx1-ubyte"].tolist()
        assert got.classes == list(data.DATASETS["fmnist"].classes)


def test_fmnist_files_already_in_root_are_used(tmp_path, no_debian_dir):
    root = tmp_path / "data"
    arrays = fake_fmnist()
    write_idx_files(root / "FashionMNIST" / "raw", arrays, gz=False)

    provenance = data.ensure_dataset("fmnist", root)

    assert provenance["source"].startswith("already present")
    raw_file = root / "FashionMNIST/raw/train-images-idx3-ubyte"
    assert provenance["files"]["FashionMNIST/raw/train-images-idx3-ubyte"] == {
        "sha256": sha256(raw_file), "size": raw_file.stat().st_size}
    assert len(provenance["files"]) == 4
    assert_split_equals(root, arrays)


def test_fmnist_decompressed_from_debian_dir_replacing_a_truncated_file(tmp_path, monkeypatch):
    root, debian = tmp_path / "data", tmp_path / "debian"
    arrays = fake_fmnist()
    write_idx_files(debian, arrays, gz=True)
    monkeypatch.setattr(data, "DEBIAN_DIR", debian)
    raw = root / "FashionMNIST" / "raw"
    write_idx_files(raw, arrays, gz=False)
    truncated = raw / "train-images-idx3-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:-100])  # an interrupted copy by some other tool

    provenance = data.ensure_dataset("fmnist", root)

    assert str(debian) in provenance["source"] and data.DEBIAN_PACKAGE in provenance["source"]
    # no temporary files left; the record of where the files came from sits beside raw/
    assert sorted(p.name for p in files_under(root)) == sorted([*data.FMNIST_FILES, data.SOURCE_RECORD])
    for name in data.FMNIST_FILES:
        assert (raw / name).read_bytes() == gzip.decompress((debian / f"{name}.gz").read_bytes())
        assert provenance["files"][f"FashionMNIST/raw/{name}"]["sha256"] == sha256(raw / name)
    assert_split_equals(root, arrays)
    # A later call finds the files in place and still reports where they were fetched from.
    again = data.ensure_dataset("fmnist", root)["source"]
    assert again.startswith(f"already present in {raw}") and provenance["source"] in again


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to build and unpack a .deb")
def test_fmnist_fetched_with_apt_get_download(tmp_path, monkeypatch, no_debian_dir):
    """A stand-in apt-get serves a real .deb built by dpkg-deb; the library unpacks it with the real dpkg-deb."""
    package = tmp_path / "package"
    arrays = fake_fmnist()
    write_idx_files(package / data._PACKAGE_DATA_DIR, arrays, gz=True)
    (package / "DEBIAN").mkdir()
    (package / "DEBIAN/control").write_text(
        f"Package: {data.DEBIAN_PACKAGE}\nVersion: 1.0\nArchitecture: all\n"
        "Maintainer: tests <tests@example.org>\nDescription: fake Fashion-MNIST\n")
    deb = tmp_path / f"{data.DEBIAN_PACKAGE}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(package), str(deb)], check=True,
                   capture_output=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(f'#!/bin/sh\n[ "$1 $2" = "download {data.DEBIAN_PACKAGE}" ] && cp "{deb}" .\n')
    apt_get.chmod(apt_get.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    provenance = data.ensure_dataset("fmnist", tmp_path / "data")

    assert "apt-get download" in provenance["source"] and deb.name in provenance["source"]
    assert_split_equals(tmp_path / "data", arrays)


def test_fmnist_every_step_fails_with_the_fix_and_no_partial_file(tmp_path, no_debian_dir, no_apt,
                                                                  dropped_connections):
    root = tmp_path / "data"

    with pytest.raises(DataMissingError) as error:
        data.ensure_dataset("fmnist", root)

    message = str(error.value)
    raw = root / "FashionMNIST" / "raw"
    assert f"1. files already in {raw}: no such folder" in message
    assert f"2. Debian's dataset-fashion-mnist files in {data.DEBIAN_DIR}: no such folder" in message
    assert "3. apt-get download dataset-fashion-mnist + dpkg-deb -x (needs no root): apt-get or dpkg-deb is not" \
           in message
    assert "4. torchvision's download (FashionMNIST(root, download=True)): connection dropped (simulated)" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert all(name in message for name in data.FMNIST_FILES) and f"{raw}/" in message
    assert files_under(root) == []  # torchvision's partial .gz went away with the temporary folder


def test_fmnist_truncated_debian_gz_leaves_no_partial_file(tmp_path, monkeypatch, no_apt, dropped_connections):
    debian = tmp_path / "debian"
    write_idx_files(debian, fake_fmnist(), gz=True)
    packed = debian / "train-images-idx3-ubyte.gz"
    packed.write_bytes(packed.read_bytes()[:-200])
    monkeypatch.setattr(data, "DEBIAN_DIR", debian)

    with pytest.raises(DataMissingError, match=f"cannot decompress {packed}"):
        data.ensure_dataset("fmnist", tmp_path / "data")
    assert files_under(tmp_path / "data") == []


def test_fmnist_load_split_without_files_says_to_call_ensure_dataset(tmp_path):
    with pytest.raises(DataMissingError, match=r"ensure_dataset\('fmnist'"):
        data.load_split("fmnist", tmp_path, train=True)


@pytest.mark.skipif(not data.DEBIAN_DIR.is_dir(), reason=f"Debian's dataset-fashion-mnist is not installed "
                    f"({data.DEBIAN_DIR} missing; `sudo apt-get install dataset-fashion-mnist`)")
def test_fmnist_from_the_real_debian_files(tmp_path):
    provenance = data.ensure_dataset("fmnist", tmp_path)
    test = data.load_split("fmnist", tmp_path, train=False)

    assert "Debian" in provenance["source"]
    assert test.images.shape == (10_000, 1, 28, 28) and test.images.dtype == torch.uint8
    assert torch.bincount(test.labels, minlength=10).tolist() == [1000] * 10  # the test set is balanced


# ---- CIFAR ----

CIFAR10_NAMES = list(data.DATASETS["cifar10"].classes)


def test_cifar10_pickles_give_the_written_pixels_in_rgb_order(tmp_path, monkeypatch):
    batches = {name: cifar_batch(2, "labels", 10) for name, _ in CIFAR10.train_list + CIFAR10.test_list}
    red = np.zeros(3072, dtype=np.uint8)
    red[:1024] = 255  # the first plane is red
    batches["test_batch"][b"data"][1] = red
    write_cifar(tmp_path, CIFAR10, batches, {Py2Str(b"label_names"): [Py2Str(n.encode()) for n in CIFAR10_NAMES],
                                             Py2Str(b"num_cases_per_batch"): 2, Py2Str(b"num_vis"): 3072},
                monkeypatch)
    with open(tmp_path / "cifar-10-batches-py/test_batch", "rb") as f:  # the fixture is in the official format
        assert set(pickle.load(f, encoding="bytes")) == {b"batch_label", b"labels", b"data", b"filenames"}

    provenance = data.ensure_dataset("cifar10", tmp_path)
    train = data.load_split("cifar10", tmp_path, train=True)
    test = data.load_split("cifar10", tmp_path, train=False)

    assert provenance["source"].startswith("already present") and len(provenance["files"]) == 7
    assert provenance["files"]["cifar-10-batches-py/batches.meta"]["sha256"] == sha256(
        tmp_path / "cifar-10-batches-py/batches.meta")
    expected = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert train.images.shape == (10, 3, 32, 32) and train.images.is_contiguous()
    assert torch.equal(train.images, torch.from_numpy(expected.reshape(10, 3, 32, 32)))
    assert train.labels.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    assert torch.equal(test.images[1, 0], torch.full((32, 32), 255, dtype=torch.uint8))
    assert test.images[1, 1:].max() == 0
    image, _ = CIFAR10(tmp_path, train=False)[1]  # torchvision's own per-image path agrees: a red picture
    assert image.getpixel((5, 7)) == (255, 0, 0)
    assert test.classes == CIFAR10_NAMES and test.labels.dtype == torch.int64


def test_cifar100_pickles_give_fine_labels_and_names(tmp_path, monkeypatch):
    batches = {"train": cifar_batch(4, "fine_labels", 100), "test": cifar_batch(3, "fine_labels", 100)}
    for batch in batches.values():
        batch[Py2Str(b"coarse_labels")] = [0] * len(batch[b"fine_labels"])
    fine_names = [f"class{i}" for i in range(100)]
    write_cifar(tmp_path, CIFAR100, batches, {
        Py2Str(b"fine_label_names"): [Py2Str(n.encode()) for n in fine_names],
        Py2Str(b"coarse_label_names"): [Py2Str(b"superclass%d" % i) for i in range(20)]}, monkeypatch)

    test = data.load_split("cifar100", tmp_path, train=False)

    assert torch.equal(test.images, torch.from_numpy(batches["test"][b"data"].reshape(3, 3, 32, 32)))
    assert test.labels.tolist() == batches["test"][b"fine_labels"]
    assert test.classes == fine_names


def test_cifar_files_that_fail_torchvisions_md5_are_refused(tmp_path, monkeypatch):
    batches = {name: cifar_batch(1, "labels", 10) for name, _ in CIFAR10.train_list + CIFAR10.test_list}
    with monkeypatch.context() as patch:  # write the files, then restore the official md5s
        write_cifar(tmp_path, CIFAR10, batches, {Py2Str(b"label_names"): []}, patch)

    with pytest.raises(DataMissingError, match="data_batch_1 fails torchvision's md5 check"):
        data.load_split("cifar10", tmp_path, train=True)


@pytest.mark.parametrize("name, folder, files", [
    ("cifar10", "cifar-10-batches-py",
     ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"]),
    ("cifar100", "cifar-100-python", ["train", "test", "meta"]),
])
def test_cifar_missing_names_folder_files_and_source(tmp_path, dropped_connections, name, folder, files):
    with pytest.raises(DataMissingError) as error:
        data.ensure_dataset(name, tmp_path)

    message = str(error.value)
    assert f"{tmp_path / folder}/ holds {', '.join(files)}" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in message and "python version" in message
    assert "download from" in message and "connection dropped (simulated)" in message
    assert "data_root" in message
    assert files_under(tmp_path) == []
    with pytest.raises(DataMissingError, match=f"{files[0]} missing"):
        data.load_split(name, tmp_path, train=False)
