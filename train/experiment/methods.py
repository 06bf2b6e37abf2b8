"""A method of the experiment: how it pre-trains on the source, how it adapts to K target clips (or that it does
not), and how it scores a frame. Each part is one command the chain knows (:mod:`train.experiment.commands`)
with the settings the method fixes; the chain (:mod:`train.experiment.chain`) runs the parts in the same way for
every method, so a new method is a new entry of :data:`METHODS` (or :func:`register`), not a change of the chain.

How the chain calls each part (the settings of the preset first, then the method's, which win):

- ``pretrain``: ``COMMAND SOURCE_ROOT --dataset SOURCE --out RUN --videos ... --val-videos HELD_OUT --resume``,
  once per architecture of the preset when the command takes ``--arch`` (else once); it leaves ``RUN/<leaves>``.
  Methods whose pre-training parts are equal share the step (``standard`` and ``soff`` share one predictor).
- ``adapt``: ``COMMAND TARGET_ROOT --dataset TARGET --predictor MODEL --out RUN --shots K --seeds S``, for every
  K > 0 and seed of the preset; it leaves ``RUN/seed<S>/adaptation.json`` and the adapted model in that folder.
  ``None``: the method adapts nothing and is scored at K = 0 only.
- ``score``: ``COMMAND TARGET_ROOT --dataset TARGET --predictor MODEL --out DIR --method TITLE``, which leaves
  ``DIR/metrics.json`` (read by results-table, one row per method title, K and protocol).

- ``refine`` (optional): ``COMMAND SOURCE_ROOT --dataset SOURCE --predictor PRETRAINED --out RUN --videos ...
  --val-videos HELD_OUT --resume``, a second source-side step on the pre-trained model (MPN's meta-training); its
  ``RUN/<leaves>`` is then the model that is adapted and scored.

A pre-training part that names its own ``arch`` (MPN) pre-trains that architecture whatever the preset's; a preset may give a
method settings of its own (``Preset.method_settings``: the same command, another budget), which win over both.

``needs`` names what a part takes from the chain beside the model: ``sfonet``, the source's three-stage SFO-Net
behind its SOFF gate (``--sfonet``, the components of the part's settings, and ``--allow-weak-sfonet`` when the
run allows it).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from pipeline.core.errors import ConfigError
from train.experiment.commands import check_settings, command

NEEDS = ("sfonet",)


@dataclass(frozen=True)
class Part:
    """One part of a method: a command of the chain and the settings (config fields) the method fixes for it.
    ``step`` names its steps (``<step>-<arch>`` for a pre-training); ``leaves`` is the file a pre-training
    leaves in its run folder."""

    command: str
    settings: Mapping[str, object] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    step: str = ""
    leaves: str = ""
    arch: str = ""          # a pre-training of this architecture whatever the preset's (MPN's own auto-encoder)

    def __post_init__(self):
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))
        unknown = [n for n in self.needs if n not in NEEDS]
        if unknown:
            raise ValueError(f"part {self.command}: needs {', '.join(unknown)}: the chain provides {', '.join(NEEDS)}")


@dataclass(frozen=True)
class Method:
    """A named way to bring a detector to a new camera (module docstring). ``title`` is its row in the tables."""

    name: str
    title: str
    description: str
    pretrain: Part
    adapt: Part | None
    score: Part
    refine: Part | None = None
    metrics: tuple[str, ...] = ()       # results-table columns beside frame, per-video and pixel (MPN: combined)


PRETRAIN_PREDICTOR = Part("train-predictor", step="predictor", leaves="predictor.pt")
SCORE_PSNR = Part("evaluate-predictor")

METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` after checking each part's settings against its command's dataclass
    (ConfigError naming the method and the setting). A name already taken by another method is refused."""
    if method.name in METHODS and METHODS[method.name] != method:
        raise ConfigError(f"method {method.name!r} is already registered")
    for role, part in (("pretrain", method.pretrain), ("refine", method.refine), ("adapt", method.adapt),
                       ("score", method.score)):
        if part is not None:
            check_settings(part.command, part.settings, where=f"method {method.name} ({role})")
    METHODS[method.name] = method
    return method


register(Method("standard", "standard", "fine-tuning on the K clips with the frame-prediction loss L_p (Eq. 9)",
                PRETRAIN_PREDICTOR, Part("finetune-predictor", {"loss": "standard"}), SCORE_PSNR))
register(Method("soff", "SOFF", "fine-tuning with L_p and SFO-Net's flow and mask terms (Eq. 10), the paper's",
                PRETRAIN_PREDICTOR, Part("finetune-predictor", {"loss": "soff"}, needs=("sfonet",)), SCORE_PSNR))
DEFAULT_METHODS = tuple(METHODS)         # standard and soff
# The control of what pre-training buys: no source pre-training, the residual predictor at its initial weights
# (its head starts at zero, so it predicts the last frame exactly: K = 0 is copy-last), adapted like standard.
register(Method("scratch", "scratch", "no source pre-training: the residual predictor at its initial weights "
                "(copy-last exactly at K = 0), fine-tuned like standard",
                Part("train-predictor", {"output": "residual", "steps": 0}, step="scratch", leaves="predictor.pt"),
                Part("finetune-predictor", {"loss": "standard"}), SCORE_PSNR))


# MPN (Lv et al., CVPR 2021; ../shared/design/peers.md A): its own auto-encoder with the prototype unit, pre-trained
# by train-predictor (L_p, the harness's loss for every predictor: the paper pre-trains with L_fra, L_p's intensity
# term), meta-trained (train-mpn), adapted by one step of its learned rates and scored by PSNR (its combined score
# beside it, results-table --metrics combined). Its own arch and output whatever the preset's: the residual output
# of the cpu recipe is the harness's lever, not MPN's.
register(Method("mpn", "MPN", "MPN: prototype auto-encoder, Meta-SGD over its prototype unit and head, one step of "
                "the learned rates on the K clips",
                Part("train-predictor", {"output": "direct"}, step="mpn-pre", leaves="predictor.pt", arch="mpn"),
                Part("finetune-predictor", {"loss": "mpn", "steps": 1, "batch_size": 8}), SCORE_PSNR,
                refine=Part("train-mpn", step="mpn-meta", leaves="predictor.pt"), metrics=("combined",)))


# zxVAD (Aich et al., WACV 2023; peers.md B): generator, discriminator and normalcy classifier trained on the source
# with pseudo-anomalies; nothing adapts to the target (K = 0 only), scored by its generator's PSNR.
register(Method("zxvad", "zxVAD", "zxVAD: a memory generator trained against pseudo-anomalies pasted with an "
                "untrained CNN; no target data (K = 0 only)",
                Part("train-zxvad", step="zxvad", leaves="predictor.pt", arch="zxvad"), None, SCORE_PSNR))


def method_arch(method: Method, arch: str) -> str:
    """The architecture ``method`` pre-trains in the preset's ``arch`` slot: its own where its part names one."""
    return method.pretrain.arch or arch


def method_label(method: Method, arch: str) -> str:
    """``<arch>-<method>`` for step names and folders (``mpn`` alone, not ``mpn-mpn``)."""
    arch = method_arch(method, arch)
    return arch if arch == method.name else f"{arch}-{method.name}"


def pretraining(method: Method, arch: str, out: Path, part: Part | None = None) -> tuple[str, Path]:
    """(step name, run folder) of ``method``'s pre-training (or of ``part``, its refine step) for ``arch`` in the
    results folder ``out``: the shared ``predictor/<arch>/`` of standard and soff, else ``pretrain/<step>-<arch>/``
    (no ``-<arch>`` when the command takes no ``--arch`` and the method names none)."""
    part = part or method.pretrain
    arch = method_arch(method, arch)
    takes_arch = "arch" in command(part.command).field_names() or bool(method.pretrain.arch)
    name = part.step or method.name
    name = f"{name}-{arch}" if takes_arch and name != arch else name      # zxvad, not zxvad-zxvad
    return name, (out / "predictor" / arch if part == PRETRAIN_PREDICTOR else out / "pretrain" / name)


def methods_named(names) -> list[Method]:
    """The registered methods called ``names``, in that order; ConfigError naming an unknown one."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ConfigError(f"--methods {','.join(unknown)}: no such method; known: {', '.join(METHODS)}")
    return [METHODS[n] for n in names]
