"""One typed run configuration, whatever its source.

``harness run`` flags and a ``--config run.yaml`` file merge into one
:class:`RunConfig` (flags win); the Python API takes the same object.
:meth:`RunConfig.expand` turns it into the grid of :class:`RunSpec` — one per
combination of components — that the runner executes.

YAML keys are the CLI flag names::

    backbone: [resnet20, mobilefacenet]   # a string or a list
    loss: arcface
    train: synthetic                      # NAME or NAME=PATH, or a list
    eval: [lfw=../shared/data/lfw_home]
    eval_folds: [0]                       # evaluate on these folds only (0-based)
    options: {arcface: {margin: 0.5}}      # same as -o arcface.margin=0.5
    seed: 0
    reports: reports
    training: {epochs: 2, batch_size: 64, lr: 0.1}
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.registry import Registry

__all__ = [
    "COMPONENT_FLAGS",
    "DEFAULT_BACKBONE",
    "DEFAULT_LOSS",
    "DEFAULT_DATASET",
    "DataRef",
    "LauncherSettings",
    "RunConfig",
    "RunSpec",
    "TrainSettings",
    "load_yaml",
    "parse_option_flags",
]

#: The run's default combination (issue: the embedded default).
DEFAULT_BACKBONE = "mobilefacenet"
DEFAULT_LOSS = "arcface"
DEFAULT_DATASET = "synthetic"

#: Training of the no-argument default run, sized to finish in under 5 minutes
#: on a 2-core CPU; any setting the user gives wins.
DEFAULT_RUN_TRAINING: Mapping[str, Any] = {"epochs": 12, "time_budget": 200.0, "warmup_steps": 10}

#: CLI flag / YAML key -> (RunConfig field, component kind).
COMPONENT_FLAGS: Mapping[str, tuple[str, str]] = {
    "backbone": ("backbones", "backbone"),
    "loss": ("losses", "loss"),
    "recognizer": ("recognizers", "recognizer"),
    "detector": ("detectors", "detector"),
    "liveness": ("liveness", "liveness"),
    "inpainter": ("inpainters", "inpainter"),
}


@dataclass(frozen=True)
class DataRef:
    """A dataset given as ``NAME`` or ``NAME=PATH`` (``--train``/``--eval``)."""

    name: str
    path: str | None = None

    @classmethod
    def parse(cls, text: "str | DataRef | Mapping[str, Any]") -> "DataRef":
        if isinstance(text, DataRef):
            return text
        if isinstance(text, Mapping):
            if len(text) != 1:
                raise ConfigError(f"a dataset entry must be NAME or NAME=PATH, got {dict(text)!r}")
            ((name, path),) = text.items()
            return cls(str(name), None if path is None else str(path))
        text = str(text).strip()
        name, sep, path = text.partition("=")
        if not name or (sep and not path):
            raise ConfigError(
                f"dataset {text!r} is not NAME or NAME=PATH (e.g. 'lfw=../shared/data/lfw_home')"
            )
        return cls(name.strip().lower(), path.strip() if sep else None)

    def __str__(self) -> str:
        return self.name if self.path is None else f"{self.name}={self.path}"


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs shared by every trained combination of a run."""

    epochs: int = 1
    max_steps: int | None = None
    time_budget: float | None = None  # seconds
    batch_size: int = 64
    lr: float = 0.1
    optimizer: str = "sgd"
    scheduler: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 5e-4
    grad_clip: float | None = 5.0
    checkpoint_every: int = 200
    device: str = "auto"
    workers: int = 0
    init: str | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.max_steps is None or self.max_steps >= 1, "max_steps must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.optimizer in ("sgd", "adamw"), "optimizer must be 'sgd' or 'adamw'"),
            (self.scheduler in ("cosine", "step", "constant"), "scheduler must be cosine, step or constant"),
            (self.checkpoint_every >= 1, "checkpoint_every must be >= 1"),
            (self.workers >= 0, "workers must be >= 0"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"training: {msg}")


@dataclass(frozen=True)
class LauncherSettings:
    """How a run is launched — never what it computes.

    These settings change where and on how many processes a run executes,
    not its result, so they stay out of :meth:`RunSpec.to_dict` and the
    config hash: the same run launched in Docker or under torchrun finds
    (and is found by) the same finished run.

    :param docker: run inside a container of ``image`` (``harness run --docker``).
    :param image: the Docker image (built from ``Dockerfile.gpu``).
    :param gpus: ``"all"``, a count (``"2"``) or device ids (``"0,1"``) for
        the container; None gives it no GPU.
    :param network: the container's network (``"none"``: no network at all).
    :param nproc_per_node: processes per node; above 1 (or given explicitly)
        the run goes through ``torchrun`` with DDP.
    :param nnodes: number of nodes of a multi-node run.
    :param node_rank: this node's rank in ``[0, nnodes)``.
    :param rdzv_endpoint: ``HOST:PORT`` where the nodes meet (needed when ``nnodes > 1``).
    """

    docker: bool = False
    image: str = "facebench"
    gpus: str | None = None
    network: str = "none"
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.nproc_per_node >= 1, "nproc_per_node must be >= 1"),
            (self.nnodes >= 1, "nnodes must be >= 1"),
            (0 <= self.node_rank < self.nnodes, f"node_rank must lie in [0, nnodes={self.nnodes})"),
            (self.nnodes == 1 or bool(self.rdzv_endpoint),
             "a multi-node run (nnodes > 1) needs rdzv_endpoint HOST:PORT where the nodes meet"),
            (bool(self.image), "image must name a Docker image"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"launcher: {msg}")
        if self.gpus is not None:
            g = str(self.gpus).strip()
            if not (g == "all" or re.fullmatch(r"\d+(,\d+)*", g)):
                raise ConfigError(
                    f"launcher: gpus {self.gpus!r} is not 'all', a count (2) or device ids (0,1)"
                )
            object.__setattr__(self, "gpus", g)

    @property
    def distributed(self) -> bool:
        """True when the run goes through torchrun."""
        return self.nproc_per_node > 1 or self.nnodes > 1


@dataclass(frozen=True)
class RunSpec:
    """One combination to run: the unit the runner, results store and report see."""

    task: str
    components: Mapping[str, str]  # kind -> name
    train: tuple[DataRef, ...]
    eval: tuple[DataRef, ...]
    options: Mapping[str, Mapping[str, Any]]
    training: TrainSettings
    seed: int
    eval_folds: tuple[int, ...] = ()

    def slug(self) -> str:
        """Readable name of the combination, e.g. ``resnet20-arcface``."""
        order = ["detector", "backbone", "loss", "recognizer", "liveness", "inpainter"]
        parts = [self.components[k] for k in order if k in self.components]
        return re.sub(r"[^a-z0-9_.-]+", "-", "-".join(parts).lower()) or self.task

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "components": dict(self.components),
            "train": [str(d) for d in self.train],
            "eval": [str(d) for d in self.eval],
            "options": {k: dict(v) for k, v in sorted(self.options.items())},
            "training": dataclasses.asdict(self.training) if self.train else None,
            "seed": self.seed,
            **({"eval_folds": list(self.eval_folds)} if self.eval_folds else {}),
        }

    def config_hash(self) -> str:
        """Short hash of everything that changes the result: an identical
        config finds its finished run instead of running again."""
        blob = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class RunConfig:
    """Everything ``harness run`` needs, from flags, YAML or Python."""

    backbones: tuple[str, ...] = ()
    losses: tuple[str, ...] = ()
    recognizers: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    liveness: tuple[str, ...] = ()
    inpainters: tuple[str, ...] = ()
    train: tuple[DataRef, ...] = ()
    eval: tuple[DataRef, ...] = ()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    training: TrainSettings = field(default_factory=TrainSettings)
    seed: int = 0
    eval_folds: tuple[int, ...] = ()
    reports: str = "reports"
    force: bool = False
    resume: bool = True
    launcher: LauncherSettings = field(default_factory=LauncherSettings)

    def __post_init__(self) -> None:
        if isinstance(self.launcher, Mapping):
            object.__setattr__(self, "launcher", _launcher_settings(self.launcher))
        for fld, _kind in COMPONENT_FLAGS.values():
            object.__setattr__(self, fld, _dedupe(_as_tuple(getattr(self, fld))))
        object.__setattr__(self, "train", tuple(DataRef.parse(d) for d in _as_list(self.train)))
        object.__setattr__(self, "eval", tuple(DataRef.parse(d) for d in _as_list(self.eval)))
        opts = {str(k): dict(v) for k, v in dict(self.options or {}).items()}
        object.__setattr__(self, "options", opts)
        object.__setattr__(self, "eval_folds", tuple(int(f) for f in _as_list(self.eval_folds)))
        if isinstance(self.training, Mapping):
            object.__setattr__(self, "training", _train_settings(self.training))

    # ------------------------------------------------------------ building
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "config") -> "RunConfig":
        """Build from a YAML-style mapping (keys are the CLI flag names)."""
        known = set(COMPONENT_FLAGS) | {"train", "eval", "eval_folds", "options", "training", "seed", "reports",
                                        "force", "resume", "launcher"}
        kwargs: dict[str, Any] = {}
        for key, value in dict(data or {}).items():
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" — did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"{source}: unknown key {key!r}{hint} Valid keys: {', '.join(sorted(known))}."
                )
            if key in COMPONENT_FLAGS:
                kwargs[COMPONENT_FLAGS[key][0]] = _as_tuple(value)
            elif key == "options":
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{source}: 'options' must map component -> {{key: value}}")
                kwargs["options"] = {k: dict(v or {}) for k, v in value.items()}
            elif key == "training":
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{source}: 'training' must be a mapping of training settings")
                kwargs["training"] = _train_settings(value, source=source)
            elif key == "launcher":
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{source}: 'launcher' must be a mapping of launcher settings")
                kwargs["launcher"] = _launcher_settings(value, source=source)
            elif key == "seed":
                kwargs["seed"] = int(value)
            else:
                kwargs[key] = value
        return cls(**kwargs)

    def merged(self, overrides: Mapping[str, Any]) -> "RunConfig":
        """A copy with ``overrides`` (only what the user gave) taking precedence.

        ``options`` merge per component and key; ``training`` per setting.
        """
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key == "options":
                merged = {k: dict(v) for k, v in self.options.items()}
                for comp, kv in value.items():
                    merged.setdefault(comp, {}).update(kv)
                changes["options"] = merged
            elif key == "training":
                changes["training"] = dataclasses.replace(self.training, **dict(value))
            elif key == "launcher" and isinstance(value, Mapping):
                changes["launcher"] = _launcher_settings(
                    {**dataclasses.asdict(self.launcher), **dict(value)}, source="flags")
            else:
                changes[key] = value
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------ the grid
    def expand(self, registry: "Registry | None" = None) -> list[RunSpec]:
        """The grid of runs this config asks for, in a stable order.

        * backbone x loss (x detector) -> recognition runs that train;
        * recognizer (x detector) -> recognition runs with a pretrained model;
        * inpainter x (recognizer or backbone with weights) (x detector) -> inpainting runs;
        * liveness (x detector) -> liveness runs;
        * detector alone -> detection runs;
        * nothing -> the default: ``mobilefacenet`` x ``arcface`` on ``synthetic``.

        With ``registry``, every name is checked (with "did you mean"),
        ``-o`` options are validated, and a backbone and loss of different
        frameworks are refused.
        """
        cfg = self
        if not any(getattr(cfg, f) for f, _ in COMPONENT_FLAGS.values()):
            defaults = TrainSettings()
            training = dataclasses.replace(cfg.training, **{
                k: v for k, v in DEFAULT_RUN_TRAINING.items() if getattr(cfg.training, k) == getattr(defaults, k)})
            cfg = dataclasses.replace(cfg, backbones=(DEFAULT_BACKBONE,), losses=(DEFAULT_LOSS,), training=training)
        backbones = cfg.backbones or ((DEFAULT_BACKBONE,) if cfg.losses else ())
        losses = cfg.losses or ((DEFAULT_LOSS,) if backbones else ())
        dets: tuple[str | None, ...] = cfg.detectors or (None,)
        combos: list[tuple[str, dict[str, str]]] = []

        def with_det(task: str, comps: dict[str, str], det: str | None) -> None:
            if det is not None:
                comps = {**comps, "detector": det}
            combos.append((task, comps))

        if cfg.inpainters and backbones:
            # an inpainting run's backbone is its recognizer: pretrained weights, nothing to train
            unweighted = [b for b in backbones if not cfg.options.get(b, {}).get("weights")]
            if unweighted or cfg.losses:
                raise ConfigError(
                    "with --inpainter, a --backbone is the verification model of the meshface protocol and needs "
                    f"weights (e.g. -o {(unweighted or backbones)[0]}.weights=PATH or a named variant such as "
                    "mobilefacenet.weights=casia) and no --loss; --train trains the inpainter"
                    + (f"; no weights for {unweighted}" if unweighted else f"; drop --loss {list(cfg.losses)}"))
        for b, d in itertools.product(backbones if not cfg.inpainters else (), dets):
            if cfg.options.get(b, {}).get("weights") and not cfg.train:
                # pretrained weights and nothing to train on: evaluate as is
                with_det("recognition", {"backbone": b}, d)
                continue
            for l in losses:
                with_det("recognition", {"backbone": b, "loss": l}, d)
        if cfg.inpainters:
            verifiers = [("recognizer", r) for r in cfg.recognizers] + [("backbone", b) for b in backbones]
            for i, v, d in itertools.product(cfg.inpainters, verifiers or [None], dets):
                comps = {"inpainter": i} | ({v[0]: v[1]} if v else {})
                with_det("inpainting", comps, d)
        else:
            for r, d in itertools.product(cfg.recognizers, dets):
                with_det("recognition", {"recognizer": r}, d)
        for lv, d in itertools.product(cfg.liveness, dets):
            with_det("liveness", {"liveness": lv}, d)
        if cfg.detectors and not (backbones or cfg.recognizers or cfg.liveness or cfg.inpainters):
            for d in cfg.detectors:
                combos.append(("detection", {"detector": d}))

        if registry is not None:
            cfg._validate(registry, combos)

        runs: list[RunSpec] = []
        for task, comps in combos:
            # A pretrained recognizer or backbone and a detection benchmark train nothing.
            trains = not (task == "detection" or (task == "recognition" and "loss" not in comps))
            train = cfg.train
            evals = cfg.eval
            if task == "recognition" and "loss" in comps:
                train = train or (DataRef(DEFAULT_DATASET),)
                evals = evals or (DataRef(DEFAULT_DATASET),)
            elif not evals:
                raise ConfigError(
                    f"a {task} run ({', '.join(comps.values())}) needs data to evaluate on: "
                    f"add --eval NAME=PATH (see `harness list dataset`)"
                )
            train = train if trains else ()
            runs.append(
                RunSpec(
                    task=task,
                    components=comps,
                    train=train,
                    eval=evals,
                    options={
                        n: dict(cfg.options[n])
                        for n in (*comps.values(), *(d.name for d in (*train, *evals)))
                        if n in cfg.options
                    },
                    training=cfg.training,
                    seed=cfg.seed,
                    eval_folds=cfg.eval_folds,
                )
            )
        datasets = sorted({ref.name for r in runs for ref in (*r.train, *r.eval)})
        if registry is not None:
            for name in datasets:
                spec = registry.get("dataset", name)
                if name in cfg.options:
                    spec.make_options(cfg.options[name])
        selected = {n for _, comps in combos for n in comps.values()} | set(datasets)
        stray = sorted(set(cfg.options) - selected)
        if stray:
            raise ConfigError(
                f"-o {stray[0]}.… names a component that is not part of this run; "
                f"selected components and datasets: {', '.join(sorted(selected))}"
            )
        return runs

    def _validate(self, registry: "Registry", combos: list[tuple[str, dict[str, str]]]) -> None:
        for task, comps in combos:
            specs = {kind: registry.get(kind, name) for kind, name in comps.items()}
            for kind, spec in specs.items():
                if spec.name in self.options:
                    spec.make_options(self.options[spec.name])
            b, l = specs.get("backbone"), specs.get("loss")
            if b is not None and l is not None and l.framework not in ("none", b.framework):
                raise ConfigError(
                    f"backbone {b.name!r} is a {b.framework} model but loss {l.name!r} is "
                    f"{l.framework}: pick a loss of the same framework "
                    f"(`harness list loss` shows each one's framework)"
                )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, DataRef)):
        return [value]
    if isinstance(value, Mapping):
        return [{k: v} for k, v in value.items()]
    return list(value)


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _train_settings(data: Mapping[str, Any], *, source: str = "config") -> TrainSettings:
    fields = {f.name: f for f in dataclasses.fields(TrainSettings)}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown training setting {key!r}{hint}")
        kwargs[key] = value
    try:
        return TrainSettings(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def _launcher_settings(data: Mapping[str, Any], *, source: str = "config") -> LauncherSettings:
    fields = {f.name for f in dataclasses.fields(LauncherSettings)}
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(key, sorted(fields), n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{source}: unknown launcher setting {key!r}{hint}")
    try:
        return LauncherSettings(**dict(data))
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def parse_option_flags(flags: Iterable[str]) -> dict[str, dict[str, str]]:
    """Parse repeated ``-o component.key=value`` flags into a nested mapping."""
    out: dict[str, dict[str, str]] = {}
    for flag in flags:
        target, sep, value = flag.partition("=")
        comp, dot, key = target.partition(".")
        if not (sep and dot and comp and key):
            raise ConfigError(
                f"-o {flag!r} is not COMPONENT.KEY=VALUE (e.g. -o lresnet50.dropout=0.1)"
            )
        out.setdefault(comp.strip(), {})[key.strip()] = value.strip()
    return out


def load_yaml(path: str | Path) -> RunConfig:
    """Read a ``--config`` YAML file into a :class:`RunConfig`."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level")
    return RunConfig.from_mapping(data, source=str(p))
