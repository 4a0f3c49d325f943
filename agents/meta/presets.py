"""Named meta-training configurations for ``vsml-bench train --preset NAME``.

* ``quick``: minutes on a laptop CPU. ES on 8x8 digits streams (half of the pairs with their
  own random projection, labels permuted); held-out: projected digits tasks drawn from keys
  never used in training, and the tabular sets (iris, wine, breast cancer: other input sizes
  and class counts).
* ``paper-small``: the recipe measured on a 2-core CPU and used for the
  shipped ``pretrained="mnist"`` VSML: MNIST train pooled to 7x7, streams of 100, 64 antithetic
  pairs (half with a random projection), σ 0.05, Adam lr 0.025. Held-out: MNIST *test* at 7x7
  and at full 28x28 size (checkpoint selection never looks at another dataset).
* ``cpu-1h`` / ``cpu-4h``: the pick of the recipe study (``vsml-bench study``) for one and four hours
  of the 2-core CPU: BPTT through streams of 100 (16 a step, Adam 0.025 with a 30-step warm-up and
  cosine decay to a tenth, gradients clipped to norm 1) on MNIST train at 7x7, half of the tasks
  with a random projection and half with inverted inputs (so that dark-on-white data such as
  Omniglot is not a new polarity). Held-out: MNIST test at 28x28 as is and inverted, and
  Fashion-MNIST *train* at 28x28 (its test split is kept for the final figure).
* ``paper``: the paper's configuration: MNIST 784 → 10, streams of 500, 1024 antithetic
  pairs, σ 0.05, Adam lr 0.025, 10k steps (hundreds of GPU-hours).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from vsml_bench.agents.meta.loop import TrainConfig
from vsml_bench.agents.meta.tasks import TaskFamily
from vsml_bench.errors import UserError


class UnknownPreset(UserError):
    """A preset name that does not exist."""


@dataclass(frozen=True)
class Preset:
    """A full meta-training setup: optimiser settings, training and held-out task families."""

    name: str
    description: str
    train: TrainConfig
    families: tuple[TaskFamily, ...]
    eval_families: tuple[TaskFamily, ...]
    eval_streams: int = 64
    learner_config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.name,
            "families": [f.to_dict() for f in self.families],
            "eval_families": [f.to_dict() for f in self.eval_families],
            "eval_streams": self.eval_streams,
        }

    def with_overrides(self, **train_overrides: Any) -> Preset:
        changes = {k: v for k, v in train_overrides.items() if v is not None}
        return replace(self, train=replace(self.train, **changes))

    def with_task_options(self, **options: Any) -> Preset:
        """The training families with env options set, e.g. ``image_size=14, stream_length=300``.

        Held-out families are unchanged, so runs that differ in their training tasks are still
        ranked on the same held-out tasks.
        """
        families = tuple(replace(f, kwargs={**f.kwargs, **options}) for f in self.families)
        return replace(self, families=families)

    def with_polarity(self) -> Preset:
        """Every training family also as an inverted copy (``invert_inputs``), half the batch each.

        Meta-training data of one polarity (MNIST: bright strokes on black) teaches a rule for
        that polarity only; Omniglot is drawn dark on white.
        """
        if any(f.kwargs.get("invert_inputs") for f in self.families):
            return self
        inverted = tuple(
            TaskFamily(f.env_id, {**f.kwargs, "invert_inputs": True}, f.share / 2)
            for f in self.families
        )
        halves = tuple(replace(f, share=f.share / 2) for f in self.families)
        return replace(self, families=halves + inverted)


def _mnist_pair(image_size: int | None, stream_length: int, split: str = "train"):
    base = {"split": split, "stream_length": stream_length, "permute_labels": True}
    if image_size is not None:
        base["image_size"] = image_size
    return (
        TaskFamily("vsml_bench/OnlineMNIST-v0", base, 0.5),
        TaskFamily("vsml_bench/OnlineMNIST-v0", {**base, "projection": True}, 0.5),
    )


#: Held-out tasks that rank checkpoints of MNIST-trained runs. Only MNIST *test* and
#: Fashion-MNIST *train* are read: the Fashion-MNIST test split stays untouched for the final
#: figure, and no ``ood-v0`` task is used to choose anything.
MNIST_VALIDATION = (
    TaskFamily(
        "vsml_bench/OnlineMNIST-v0",
        {"split": "test", "stream_length": 100},
        name="mnist_test_28x28",
    ),
    TaskFamily(
        "vsml_bench/OnlineMNIST-v0",
        {"split": "test", "stream_length": 100, "invert_inputs": True},
        name="mnist_test_28x28_inverted",
    ),
    TaskFamily(
        "vsml_bench/OnlineFashionMNIST-v0",
        {"split": "train", "stream_length": 100},
        name="fashion_train_28x28",
    ),
)


def _presets() -> dict[str, Preset]:
    digits = {"stream_length": 50, "permute_labels": True}
    return {
        "quick": Preset(
            name="quick",
            description="digits 8x8 with projections and label permutations, ES, minutes on a CPU",
            train=TrainConfig(
                method="es",
                steps=1500,
                n_pairs=32,
                sigma=0.05,
                learning_rate=0.025,
                eval_every=100,
                checkpoint_every=50,
            ),
            families=(
                TaskFamily("vsml_bench/OnlineDigits-v0", digits, 0.5),
                TaskFamily("vsml_bench/OnlineDigits-v0", {**digits, "projection": True}, 0.5),
            ),
            eval_families=(
                TaskFamily(
                    "vsml_bench/OnlineDigits-v0",
                    {**digits, "projection": True},
                    name="digits_projected",
                ),
                TaskFamily("vsml_bench/OnlineIris-v0", {"stream_length": 50}, name="iris"),
                TaskFamily("vsml_bench/OnlineWine-v0", {"stream_length": 50}, name="wine"),
                TaskFamily(
                    "vsml_bench/OnlineBreastCancer-v0", {"stream_length": 50}, name="breast_cancer"
                ),
            ),
            eval_streams=64,
        ),
        "paper-small": Preset(
            name="paper-small",
            description="MNIST train pooled to 7x7, streams of 100, 64 ES pairs (half projected)",
            train=TrainConfig(
                method="es",
                steps=10000,
                n_pairs=64,
                sigma=0.05,
                learning_rate=0.025,
                eval_every=250,
                checkpoint_every=25,
            ),
            families=_mnist_pair(7, 100),
            eval_families=MNIST_VALIDATION,
            eval_streams=64,
        ),
        **{
            f"cpu-{hours}h": Preset(
                name=f"cpu-{hours}h",
                description=(
                    f"the recipe study's pick for {hours} h on 2 CPU cores: BPTT, 16 MNIST 7x7 "
                    "streams of 100 a step (half projected, half inverted), cosine decay"
                ),
                train=TrainConfig(
                    method="bptt",
                    steps=steps,
                    n_tasks=16,
                    learning_rate=0.025,
                    schedule="cosine",
                    warmup_steps=30,
                    final_lr_fraction=0.1,
                    eval_every=75,
                    checkpoint_every=25,
                ),
                families=_mnist_pair(7, 100),
                eval_families=MNIST_VALIDATION,
                eval_streams=64,
            ).with_polarity()
            for hours, steps in ((1, 1500), (4, 6000))
        },
        "paper": Preset(
            name="paper",
            description="the paper's config: MNIST 784->10, streams of 500, 1024 ES pairs, 10k steps",
            train=TrainConfig(
                method="es",
                steps=10000,
                n_pairs=1024,
                sigma=0.05,
                learning_rate=0.025,
                eval_every=100,
                checkpoint_every=10,
            ),
            families=(
                TaskFamily(
                    "vsml_bench/OnlineMNIST-v0",
                    {"split": "train", "stream_length": 500, "permute_labels": True},
                ),
            ),
            eval_families=(
                TaskFamily(
                    "vsml_bench/OnlineMNIST-v0",
                    {"split": "test", "stream_length": 500},
                    name="mnist_test",
                ),
            ),
            eval_streams=128,
        ),
    }


PRESETS: dict[str, Preset] = _presets()


def get(name: str) -> Preset:
    """The preset called ``name``; raises :class:`UnknownPreset` naming the choices."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownPreset(
            f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}"
        ) from None
