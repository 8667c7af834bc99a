"""One typed run configuration, whatever its source.

``harness run`` flags and a ``--config run.yaml`` file merge into one
:class:`RunConfig` (flags win); the Python API takes the same object.
:meth:`RunConfig.expand` turns it into the grid of :class:`RunSpec` — one per
combination of components — that the runner executes.

The schema is the dataclasses below: every key is a field with its type and
default (:class:`RunConfig`, ``training:`` :class:`TrainSettings`,
``launcher:`` :class:`LauncherSettings`), checked by the same converter that
checks ``-o`` options (:func:`harness.specs.parse_option_value`) and the
bounds in each ``__post_init__``.  docs/config.md documents every key.

YAML keys are the CLI flag names::

    backbone: [resnet20, mobilefacenet]   # a string or a list
    loss: arcface
    train: synthetic                      # NAME or NAME=PATH, or a list
    eval: [lfw=../shared/data/lfw_home]
    eval_folds: [0]                       # evaluate on these folds only (0-based)
    options: {arcface: {m: 0.5}}          # same as -o arcface.m=0.5
    seed: 0
    reports: reports
    training: {epochs: 2, batch_size: 64, lr: 0.1}
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import itertools
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping

from harness._values import did_you_mean, one_line, short_repr
from harness.errors import ConfigError
from harness.run_loggers import normalise_selection
from harness.specs import check_range, field_types, parse_option_value

if TYPE_CHECKING:
    from harness.registry import Registry

__all__ = [
    "COMPONENT_FLAGS",
    "DEFAULT_BACKBONE",
    "DEFAULT_LOSS",
    "DEFAULT_DATASET",
    "DEFAULT_RUN_FLIP_TEST",
    "DEFAULT_RUN_OPTIONS",
    "FLIP_TESTS",
    "DEFAULT_RUN_TRAINING",
    "TRAINING_LENGTH",
    "DataRef",
    "IntervalSettings",
    "LauncherSettings",
    "RunConfig",
    "RunSpec",
    "SlurmSettings",
    "TrainSettings",
    "YAML_KEYS",
    "load_yaml",
    "parse_option_flags",
]

#: The run's default combination (issue: the embedded default).
DEFAULT_BACKBONE = "mobilefacenet"
DEFAULT_LOSS = "arcface"
DEFAULT_DATASET = "synthetic"

#: Training of the no-argument default run — the one place its schedule
#: lives.  A setting the user gives (flag, YAML key, mapping key) wins, even
#: one equal to the :class:`TrainSettings` default.  A fixed, seeded number
#: of steps (280 batches of 32, SGD with 20 warm-up steps and cosine decay)
#: and no time budget, so every run gives the same metrics whatever the
#: machine's load (for one number of CPU threads: torch's results differ
#: between 1 and 2 intra-op threads).  See :data:`DEFAULT_RUN_OPTIONS` for
#: the data, :data:`DEFAULT_RUN_FLIP_TEST` for the evaluation, and the README
#: for the measured accuracy and wall time.
DEFAULT_RUN_TRAINING: Mapping[str, Any] = {
    "epochs": 5, "max_steps": 280, "batch_size": 32, "lr": 0.1, "warmup_steps": 20}

#: Component options of the no-argument default run, each used only where the
#: user gave no option of that component.  More *training* identities than the
#: generator's default of 40 (overfitting 40 people capped held-out accuracy
#: near 0.85): the rendering and the 20 held-out test identities are the
#: generator's defaults, unchanged (test identities are seeded by their own
#: split and index, so the evaluation pairs and the untrained baseline are the
#: same as with 40 training identities).
DEFAULT_RUN_OPTIONS: Mapping[str, Mapping[str, Any]] = {"synthetic": {"train_identities": 120}}

#: Test-time flip fusion of the no-argument default run (unless the user gives
#: ``flip_test``): the embedding of an image is f(x) + f(flip x), insightface's
#: "Accuracy-Flip" convention, stated in the run's protocol box.
DEFAULT_RUN_FLIP_TEST = "sum"

#: ``--flip-test`` values: test-time flip fusion of a backbone's embeddings.
FLIP_TESTS = ("none", "sum", "concat")

#: How long to train is one decision: a user who gives either of these gets
#: none of the default run's ``epochs``, ``max_steps`` or ``time_budget``
#: (``--epochs 1`` trains one epoch, with no step limit or time budget it did
#: not ask for).  A ``time_budget`` alone caps the default run's schedule.
TRAINING_LENGTH = ("epochs", "max_steps")

#: CLI flag / YAML key -> (RunConfig field, component kind).
COMPONENT_FLAGS: Mapping[str, tuple[str, str]] = {
    "backbone": ("backbones", "backbone"),
    "loss": ("losses", "loss"),
    "recognizer": ("recognizers", "recognizer"),
    "detector": ("detectors", "detector"),
    "landmarker": ("landmarkers", "landmarker"),
    "liveness": ("liveness", "liveness"),
    "inpainter": ("inpainters", "inpainter"),
}

#: tasks whose faces ``--landmarker`` can align beside a model (the detector finds the box, the landmarker
#: places the five points): everything that crops faces by five-point alignment
LANDMARKER_TASKS = ("recognition", "inpainting", "liveness")

#: The largest config file read (a run config is a few hundred bytes).
MAX_CONFIG_BYTES = 1 << 20


def _convert_fields(obj: Any, prefix: str, skip: Iterable[str] = ()) -> None:
    """Convert each field of the frozen dataclass ``obj`` to its declared type, in place.

    :raises ConfigError: naming ``prefix + field``, the value and the type expected.
    """
    hints = field_types(type(obj))
    for f in dataclasses.fields(obj):
        if f.name not in skip:
            value = parse_option_value(hints[f.name], getattr(obj, f.name), where=prefix + f.name)
            object.__setattr__(obj, f.name, value)


def _settings(cls: type, data: Any, what: str, *, source: str = "config") -> Any:
    """``cls(**data)`` for a ``training:`` / ``launcher:`` mapping, unknown keys refused."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {what}={short_repr(data)}: expected a mapping of {what} settings")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(
                f"{source}: unknown {what} setting {short_repr(key)}{did_you_mean(key, names)} "
                f"Valid {what} settings: {', '.join(names)}.")
    try:
        return cls(**dict(data))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


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
                raise ConfigError(f"a dataset entry must be NAME or NAME=PATH, got {short_repr(dict(text))}")
            ((name, path),) = text.items()
            if not isinstance(name, str) or not (path is None or isinstance(path, (str, int, float))):
                raise ConfigError(f"a dataset entry must be NAME or NAME=PATH, got {short_repr(dict(text))}")
            return cls.parse(name if path is None else f"{name}={path}")
        if not isinstance(text, str):
            raise ConfigError(
                f"dataset {short_repr(text)} is not NAME or NAME=PATH (e.g. 'lfw=../shared/data/lfw_home')")
        text = text.strip()
        name, sep, path = text.partition("=")
        if not name.strip() or (sep and not path.strip()):
            raise ConfigError(
                f"dataset {short_repr(text)} is not NAME or NAME=PATH (e.g. 'lfw=../shared/data/lfw_home')"
            )
        return cls(name.strip().lower(), path.strip() if sep else None)

    def __str__(self) -> str:
        return self.name if self.path is None else f"{self.name}={self.path}"


@dataclass(frozen=True)
class TrainSettings:
    """Training knobs shared by every trained combination of a run.

    Each field is a ``training:`` key in YAML and (most) a ``harness run``
    flag; values are converted to the declared type and checked against the
    bounds below.  ``time_budget`` 0 or None means no time budget.
    """

    epochs: int = 1
    max_steps: int | None = None
    time_budget: float | None = None  # seconds; 0 or None: no budget
    batch_size: int = 64
    lr: float = 0.1
    optimizer: Literal["sgd", "adamw"] = "sgd"
    scheduler: Literal["cosine", "step", "constant"] = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 5e-4
    grad_clip: float | None = 5.0
    checkpoint_every: int = 200
    device: str = "auto"
    workers: int = 0
    init: str | None = None
    #: ``--log``: where training progress goes — tensorboard, mlflow or none (:mod:`harness.run_loggers`);
    #: () : TensorBoard when installed.  How a run is watched, not what it computes: not in the config hash.
    log: tuple[str, ...] = ()

    #: settings left out of :meth:`RunSpec.to_dict` and so of the config hash
    NOT_HASHED: typing.ClassVar[frozenset[str]] = frozenset({"log"})

    #: field -> (low, high, low_open); high None: no upper bound.  A None value is not checked.
    BOUNDS: typing.ClassVar[Mapping[str, tuple[float, float | None, bool]]] = {
        "epochs": (1, 100_000, False),
        "max_steps": (1, 10**9, False),
        "time_budget": (0, 10**7, False),
        "batch_size": (1, 65_536, False),
        "lr": (0, 100.0, True),
        "warmup_steps": (0, 10**9, False),
        "weight_decay": (0, 1.0, False),
        "grad_clip": (0, None, True),
        "checkpoint_every": (1, 10**9, False),
        "workers": (0, 256, False),
    }

    def __post_init__(self) -> None:
        _convert_fields(self, "training.")
        for name, (low, high, low_open) in self.BOUNDS.items():
            value = getattr(self, name)
            if value is not None:
                check_range(f"training.{name}", value, low, high, low_open=low_open,
                            integer=isinstance(value, int))
        if self.time_budget == 0:
            object.__setattr__(self, "time_budget", None)  # 0 switches the budget off
        if not self.device.strip():
            raise ConfigError("training.device='': expected auto, cpu, cuda or cuda:N")
        object.__setattr__(self, "log", normalise_selection(self.log))


#: ``launcher.slurm.time``: minutes, M:S, H:M:S, D-H, D-H:M or D-H:M:S (sbatch's formats).
_SLURM_TIME = re.compile(r"(?:(\d{1,4})-)?(\d{1,7})(?::(\d{1,2}))?(?::(\d{1,2}))?")
#: sbatch options that facebench or submitit set themselves, or that have a setting of their own.
_SLURM_OWN = {"output": None, "error": None, "array": None, "open-mode": None, "signal": None, "job-name": None,
              "partition": "partition", "time": "time", "mem": "mem", "gpus-per-node": "gpus_per_node",
              "cpus-per-task": "cpus_per_task"}


def slurm_minutes(text: Any, where: str = "launcher.slurm.time") -> int:
    """A Slurm time limit (``90``, ``1:30:00``, ``2-00:00:00``) in whole minutes, rounded up.

    :raises ConfigError: text that is not one of sbatch's time formats, or under a minute.
    """
    m = _SLURM_TIME.fullmatch(str(text).strip())
    bad = ConfigError(f"{where}={short_repr(text)}: expected a Slurm time limit: minutes (90), H:MM:SS (1:30:00) "
                      "or D-HH:MM:SS (2-00:00:00)")
    if m is None:
        raise bad
    days, first, second, third = (int(g) if g is not None else None for g in m.groups())
    if days is not None:  # D-H, D-H:M, D-H:M:S
        seconds = days * 86400 + first * 3600 + (second or 0) * 60 + (third or 0)
    elif third is not None:  # H:M:S
        seconds = first * 3600 + second * 60 + third
    else:  # M or M:S
        seconds = first * 60 + (second or 0)
    if seconds < 60:
        raise bad
    return -(-seconds // 60)


@dataclass(frozen=True)
class SlurmSettings:
    """``launcher.slurm``: the resources of each job of ``harness run --launcher slurm``.

    Every cell of the grid is one job (one Slurm array task) asking for these;
    see docs/scale.md.  ``--launcher submitit-local`` uses ``time``,
    ``gpus_per_node`` (each local job sees the first N GPUs; 0: none), ``setup``,
    ``log_dir`` and ``wait`` only.

    :param partition: ``sbatch --partition``; None: the cluster's default.
    :param gpus_per_node: GPUs of each job (``--gpus-per-node``); 0 asks for none.
    :param cpus_per_task: CPUs of each job (``--cpus-per-task``); None: the cluster's default.
    :param time: time limit of each job in a Slurm format (``90``, ``1:30:00``, ``2-00:00:00``).
    :param mem: memory of each job (``--mem``), e.g. ``32G`` or ``500M``; None: the cluster's default.
    :param extra: further sbatch options as ``KEY=VALUE`` (or a bare ``KEY``), e.g.
        ``account=vision``, ``qos=high``, ``constraint=a100``, ``exclusive``.
    :param setup: shell lines each job runs before Python starts (``module load cuda``,
        ``source ~/venv/bin/activate``).
    :param log_dir: where submitit keeps each job's pickles and logs; None: ``<reports>/slurm``.
    :param wait: wait for the jobs, one progress line each, then rebuild the index; False
        (``--no-wait``) prints the job ids and the log folder and returns.
    """

    partition: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    time: str = "60"
    mem: str | None = None
    extra: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    log_dir: str | None = None
    wait: bool = True

    def __post_init__(self) -> None:
        _convert_fields(self, "launcher.slurm.")
        check_range("launcher.slurm.gpus_per_node", self.gpus_per_node, 0, 1024, integer=True)
        if self.cpus_per_task is not None:
            check_range("launcher.slurm.cpus_per_task", self.cpus_per_task, 1, 100_000, integer=True)
        slurm_minutes(self.time)
        if self.partition is not None and not re.fullmatch(r"[\w.,-]+", self.partition):
            raise ConfigError(f"launcher.slurm.partition={short_repr(self.partition)}: expected a partition "
                              "name (letters, digits, '_', '-', '.'; several joined by ',')")
        if self.mem is not None:
            m = re.fullmatch(r"(\d{1,12})\s*([KMGT])?B?", self.mem.strip(), flags=re.I)
            if m is None:
                raise ConfigError(f"launcher.slurm.mem={short_repr(self.mem)}: expected a size such as 32G, "
                                  "500M or 1T (sbatch --mem)")
            object.__setattr__(self, "mem", m.group(1) + (m.group(2) or "M").upper())
        self.sbatch_extra()  # checks every KEY=VALUE
        for line in self.setup:
            if not line.strip() or "\n" in line:
                raise ConfigError(f"launcher.slurm.setup: {short_repr(line)} is not one shell line; give one "
                                  "command per item (e.g. 'module load cuda')")

    @property
    def minutes(self) -> int:
        """The time limit in minutes."""
        return slurm_minutes(self.time)

    def sbatch_extra(self) -> dict[str, str | bool]:
        """``extra`` as ``{option: value}`` (True for a bare flag), e.g. ``{"account": "vision"}``.

        :raises ConfigError: an item that is not ``KEY=VALUE``, or an option with a setting of its own
            (``partition`` …) or one that submitit sets (``output``, ``array`` …).
        """
        out: dict[str, str | bool] = {}
        for item in self.extra:
            m = re.fullmatch(r"(?:--)?([A-Za-z][\w-]*)(?:=(.+))?", item.strip(), flags=re.S)
            if m is None or "\n" in item:
                raise ConfigError(f"launcher.slurm.extra: {short_repr(item)} is not an sbatch option KEY=VALUE "
                                  "(e.g. account=vision, qos=high) or a bare KEY (e.g. exclusive)")
            key = m.group(1).lower().replace("_", "-")
            if key in _SLURM_OWN:
                own = _SLURM_OWN[key]
                fix = (f"set launcher.slurm.{own} (--slurm-{own.replace('_', '-')}) instead" if own
                       else "facebench and submitit set it for each job; drop it")
                raise ConfigError(f"launcher.slurm.extra: {short_repr(item)}: {fix}")
            out[key] = m.group(2).strip() if m.group(2) is not None else True
        return out


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
    :param workers: evaluation's worker processes (decode → detect → align, see
        :mod:`harness.tasks._pipeline`); None: the usable cores (shared by the ranks of a
        node), 0: in the run's own process.
    :param cluster: ``slurm`` (``harness run --launcher slurm``): each cell of the grid is
        one job submitted through submitit with the resources in ``slurm``;
        ``submitit-local``: the same jobs as processes on this machine; None: this process.
    :param slurm: the jobs' resources (:class:`SlurmSettings`).
    """

    docker: bool = False
    image: str = "facebench"
    gpus: str | None = None
    network: str = "none"
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    rdzv_endpoint: str | None = None
    workers: int | None = None
    cluster: Literal["slurm", "submitit-local"] | None = None
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def __post_init__(self) -> None:
        _convert_fields(self, "launcher.", skip={"slurm"})
        object.__setattr__(self, "slurm", _settings(SlurmSettings, self.slurm, "launcher.slurm", source="launcher"))
        check_range("launcher.nproc_per_node", self.nproc_per_node, 1, 4096, integer=True)
        if self.workers is not None:
            check_range("launcher.workers", self.workers, 0, 1024, integer=True)
        check_range("launcher.nnodes", self.nnodes, 1, 100_000, integer=True)
        checks = [
            (0 <= self.node_rank < self.nnodes, f"node_rank must lie in [0, nnodes={self.nnodes})"),
            (self.nnodes == 1 or bool(self.rdzv_endpoint),
             "a multi-node run (nnodes > 1) needs rdzv_endpoint HOST:PORT where the nodes meet"),
            (bool(self.image), "image must name a Docker image"),
            (self.cluster is None or not (self.docker or self.distributed),
             f"cluster {self.cluster} runs each cell of the grid as a job of one process; drop docker / "
             "nproc_per_node / nnodes (--docker, --nproc-per-node) or the cluster (--launcher)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(f"launcher: {msg}")
        if self.gpus is not None:
            g = str(self.gpus).strip()
            if not (g == "all" or re.fullmatch(r"\d+(,\d+)*", g)):
                raise ConfigError(
                    f"launcher: gpus {short_repr(self.gpus)} is not 'all', a count (2) or device ids (0,1)"
                )
            object.__setattr__(self, "gpus", g)

    @property
    def distributed(self) -> bool:
        """True when the run goes through torchrun."""
        return self.nproc_per_node > 1 or self.nnodes > 1


@dataclass(frozen=True)
class IntervalSettings:
    """``intervals:`` -- the confidence intervals every run attaches to its metrics.

    A YAML key (and a Python field) like ``training:``; part of the config
    hash only when it differs from the defaults, so runs made before it
    existed are still found.  ``docs/config.md`` and ``docs/metrics.md``
    describe each interval.

    :param bootstrap: replicates B of each bootstrap; 0 switches every interval off.
    :param method: bootstrap interval: ``percentile`` or ``bca``.
    :param unit: what a verification bootstrap resamples: ``subjects`` where
        the identities of the pairs are known, else ``pairs`` (``auto``), or
        one of them forced (``subjects`` falls back to pairs, stated, where
        identities are unknown).
    :param binomial: interval of an error rate at a fixed threshold
        (liveness APCER / BPCER, FAR / FRR under a pair bootstrap).
    :param level: confidence level, e.g. 0.95.
    :param seed: seed of the bootstrap draws; None: the run's ``seed``.
    """

    bootstrap: int = 1000
    method: Literal["percentile", "bca"] = "percentile"
    unit: Literal["auto", "pairs", "subjects"] = "auto"
    binomial: Literal["clopper-pearson", "wilson"] = "clopper-pearson"
    level: float = 0.95
    seed: int | None = None

    def __post_init__(self) -> None:
        _convert_fields(self, "intervals.")
        check_range("intervals.bootstrap", self.bootstrap, 0, 1_000_000, integer=True)
        check_range("intervals.level", self.level, 0, 1, low_open=True)
        if self.level >= 1:
            raise ConfigError(f"intervals.level={self.level}: expected a level in (0, 1), e.g. 0.95")
        if self.seed is not None:
            check_range("intervals.seed", self.seed, 0, 2**32 - 1, integer=True)

    @property
    def enabled(self) -> bool:
        return self.bootstrap > 0

    def kwargs(self, run_seed: int) -> dict[str, Any]:
        """Keyword arguments of the :mod:`harness.metrics.uncertainty` attachers."""
        return {"B": self.bootstrap, "method": self.method, "level": self.level, "binomial": self.binomial,
                "seed": int(run_seed if self.seed is None else self.seed)}


@dataclass(frozen=True)
class RunSpec:
    """One combination to run: the unit the runner, results store and report see.

    ``options`` hold the values the options dataclasses converted (when
    expanded with a registry), so the same setting from a flag or from YAML
    gives one :meth:`config_hash`.
    """

    task: str
    components: Mapping[str, str]  # kind -> name
    train: tuple[DataRef, ...]
    eval: tuple[DataRef, ...]
    options: Mapping[str, Mapping[str, Any]]
    training: TrainSettings
    seed: int
    eval_folds: tuple[int, ...] = ()
    #: leave out unreadable images (their pairs dropped), counted in results (``--skip-bad``)
    skip_bad: bool = False
    #: ``--protocol``: what a recognition run measures (see :attr:`RunConfig.protocol`)
    protocol: str = "verification"
    #: ``intervals:``: the confidence intervals of the metrics (see :class:`IntervalSettings`)
    intervals: IntervalSettings = field(default_factory=IntervalSettings)
    #: ``--groups FILE.csv``: demographic differentials of a verification run (docs/metrics.md)
    groups: str | None = None
    #: ``--engine``: the engine that trains and runs the backbone (None: its framework's, e.g. torch)
    engine: str | None = None
    #: ``--flip-test``: test-time flip fusion of a backbone's embeddings (None: the model's own rule)
    flip_test: str | None = None

    def slug(self) -> str:
        """Readable name of the combination, e.g. ``resnet20-arcface``."""
        order = ["detector", "landmarker", "backbone", "loss", "recognizer", "liveness", "inpainter"]
        parts = [self.components[k] for k in order if k in self.components]
        parts += [self.engine] if self.engine else []
        return re.sub(r"[^a-z0-9_.-]+", "-", "-".join(parts).lower()) or self.task

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "components": dict(self.components),
            "train": [str(d) for d in self.train],
            "eval": [str(d) for d in self.eval],
            "options": {k: _plain(dict(v)) for k, v in sorted(self.options.items())},
            "training": {k: v for k, v in dataclasses.asdict(self.training).items()
                         if k not in TrainSettings.NOT_HASHED} if self.train else None,
            "seed": self.seed,
            **({"eval_folds": list(self.eval_folds)} if self.eval_folds else {}),
            **({"skip_bad": True} if self.skip_bad else {}),
            **({"protocol": self.protocol} if self.protocol != "verification" else {}),
            **({"intervals": dataclasses.asdict(self.intervals)} if self.intervals != IntervalSettings() else {}),
            **({"groups": self.groups} if self.groups else {}),
            **({"engine": self.engine} if self.engine else {}),
            **({"flip_test": self.flip_test} if self.flip_test else {}),
        }

    def config_hash(self) -> str:
        """Short hash of everything that changes the result: an identical
        config finds its finished run instead of running again.  A file named
        by an option (``-o onnx.model=…``, a checkpoint) counts by its content,
        so a model replaced at the same path is a new run, not a finished one."""
        data = self.to_dict()
        files = option_file_digests(self.options)
        if files:
            data["option_files"] = files
        blob = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


def option_file_digests(options: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """``{"onnx.model": sha256, …}`` for every option value that names an existing file."""
    from harness.weights import sha256_file

    digests = {}
    for owner, values in sorted(options.items()):
        for key, value in sorted(dict(values).items()):
            if isinstance(value, (str, Path)) and str(value) and Path(value).is_file():
                digests[f"{owner}.{key}"] = sha256_file(value)
    return digests


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively: what JSON and YAML write."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _names(value: Any, key: str) -> tuple[str, ...]:
    """A component key's value: one name or a list of names, deduplicated in order."""
    items = [] if value is None else [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in items):
        raise ConfigError(f"{key}={short_repr(value)}: expected a {key} name or a list of names")
    return tuple(dict.fromkeys(v.strip() for v in items))


def _options(value: Any) -> dict[str, dict[str, Any]]:
    """``options:``: component -> {key: value}."""
    example = "e.g. options: {resnet20: {dropout: 0.1}}"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"options={short_repr(value)}: 'options' must map component -> {{key: value}} ({example})")
    out: dict[str, dict[str, Any]] = {}
    for comp, kv in value.items():
        name = comp if isinstance(comp, str) and len(comp) <= 80 else short_repr(comp)
        if not isinstance(comp, str) or not (kv is None or isinstance(kv, Mapping)):
            raise ConfigError(f"options.{name}={short_repr(kv)}: expected a mapping of option: value ({example})")
        if not all(isinstance(k, str) for k in (kv or {})):
            raise ConfigError(f"options.{name}: option names must be text, got {short_repr(list(kv))}")
        out[comp] = dict(kv or {})
    return out


def _datarefs(value: Any) -> tuple[DataRef, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, DataRef)):
        value = [value]
    elif isinstance(value, Mapping):
        value = [{k: v} for k, v in value.items()]
    elif not isinstance(value, (list, tuple)):
        raise ConfigError(f"dataset {short_repr(value)} is not NAME or NAME=PATH, or a list of them")
    return tuple(DataRef.parse(d) for d in value)


_INTERNAL = {"metadata": {"internal": True}}


@dataclass(frozen=True)
class RunConfig:
    """Everything ``harness run`` needs, from flags, YAML or Python.

    ``training`` takes a :class:`TrainSettings` (a complete schedule) or a
    mapping of only the settings given; the default run fills in the others
    from :data:`DEFAULT_RUN_TRAINING`.
    """

    backbones: tuple[str, ...] = ()
    losses: tuple[str, ...] = ()
    recognizers: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    landmarkers: tuple[str, ...] = ()
    liveness: tuple[str, ...] = ()
    inpainters: tuple[str, ...] = ()
    train: tuple[DataRef, ...] = ()
    eval: tuple[DataRef, ...] = ()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    training: TrainSettings = None  # type: ignore[assignment]  # None: TrainSettings(), nothing given
    seed: int = 0
    eval_folds: tuple[int, ...] = ()
    reports: str = "reports"
    force: bool = False
    resume: bool = True
    #: ``--skip-bad``: every dataset leaves out unreadable images (eval pairs using them are dropped),
    #: counted and listed in results.json and the report; off, the first one is a DataError
    skip_bad: bool = False
    #: ``--protocol``: verification (1:1 pairs), identification (closed-set 1:N), open-set (1:N with
    #: non-mated searches) or all the data supports; see docs/identification.md
    protocol: Literal["verification", "identification", "open-set", "all", "tracking"] = "verification"
    launcher: LauncherSettings = field(default_factory=LauncherSettings)
    #: ``intervals:``: bootstrap replicates (0: none), method, unit, level and seed of the metrics' intervals
    intervals: IntervalSettings = field(default_factory=IntervalSettings)
    #: ``--groups``: a CSV of identity or image -> attributes; recognition runs add demographic
    #: differentials at one global threshold (harness.metrics.demographics, docs/metrics.md)
    groups: str | None = None
    #: ``--engine``: the engine of every backbone run (``tf``: Keras; None: the backbone's framework,
    #: torch for the built-ins); an engine that adapts components lists them in its spec's meta["adapts"]
    engine: str | None = None
    #: ``--flip-test``: test-time flip fusion of every backbone's embeddings — none, sum
    #: (f(x) + f(flip x)) or concat; None: the model's own rule (concat for the CASIA
    #: MobileFaceNet weights, else none); the default run uses :data:`DEFAULT_RUN_FLIP_TEST`
    flip_test: str | None = None
    #: the training settings the user gave (not a YAML key): None derives it
    #: from ``training`` (a mapping: its keys; a TrainSettings: all of them)
    training_given: frozenset[str] | None = field(default=None, **_INTERNAL)

    def __post_init__(self) -> None:
        for flag, (fld, _kind) in COMPONENT_FLAGS.items():
            object.__setattr__(self, fld, _names(getattr(self, fld), flag))
        object.__setattr__(self, "train", _datarefs(self.train))
        object.__setattr__(self, "eval", _datarefs(self.eval))
        object.__setattr__(self, "options", _options(self.options))
        object.__setattr__(self, "launcher", _settings(LauncherSettings, self.launcher, "launcher"))
        object.__setattr__(self, "intervals", _settings(IntervalSettings, self.intervals, "intervals"))
        self._set_training()
        folds = self.eval_folds
        folds = [folds] if isinstance(folds, (int, str)) and not isinstance(folds, bool) else folds
        object.__setattr__(self, "eval_folds", folds)
        _convert_fields(self, "", skip={*(f for f, _ in COMPONENT_FLAGS.values()), "train", "eval", "options",
                                         "training", "launcher", "training_given",
                                         "intervals", "flip_test"})
        check_range("seed", self.seed, 0, 2**32 - 1, integer=True)
        if self.flip_test is not None and self.flip_test not in FLIP_TESTS:
            raise ConfigError(f"flip_test={short_repr(self.flip_test)}: expected one of {', '.join(FLIP_TESTS)}")
        if self.groups is not None and not str(self.groups).strip():
            raise ConfigError("groups: an empty path; expected a CSV of identity|image,attribute,… (docs/metrics.md)")
        for fold in self.eval_folds:
            check_range("eval_folds", fold, 0, 9999, integer=True)

    def _set_training(self) -> None:
        """``training`` as TrainSettings; ``training_given`` the settings the user gave."""
        training, given = self.training, frozenset(self.training_given or ())
        if training is None:
            training = TrainSettings()
        elif isinstance(training, Mapping):
            given |= frozenset(training)
            training = _settings(TrainSettings, training, "training")
        elif not isinstance(training, TrainSettings):
            raise ConfigError(f"training={short_repr(training)}: expected a mapping of training settings")
        elif self.training_given is None:  # a complete TrainSettings object: every setting given
            given = frozenset(f.name for f in dataclasses.fields(TrainSettings))
        object.__setattr__(self, "training", training)
        object.__setattr__(self, "training_given", given)

    # ------------------------------------------------------------ building
    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "config") -> "RunConfig":
        """Build from a YAML-style mapping (keys are the CLI flag names, :data:`YAML_KEYS`)."""
        kwargs: dict[str, Any] = {}
        for key, value in dict(data or {}).items():
            if key not in YAML_KEYS:
                raise ConfigError(
                    f"{source}: unknown key {short_repr(key)}{did_you_mean(key, YAML_KEYS)} "
                    f"Valid keys: {', '.join(sorted(YAML_KEYS))}."
                )
            if key == "training":
                value = _settings(TrainSettings, value, "training", source=source)
                kwargs["training_given"] = frozenset(data[key])
            elif key == "launcher":
                value = _settings(LauncherSettings, value, "launcher", source=source)
            elif key == "intervals":
                value = _settings(IntervalSettings, value, "intervals", source=source)
            kwargs[YAML_KEYS[key]] = value
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def to_mapping(self, *, launcher: bool = False) -> dict[str, Any]:
        """The YAML mapping :meth:`from_mapping` reads back into this config.

        ``training`` holds only the settings the user gave, so a default run
        read back is still the default run.

        :param launcher: include the launcher settings (the Docker runner passes
            torchrun settings on to the container; torchrun workers get none).
        """
        out: dict[str, Any] = {}
        for flag, (fld, _kind) in COMPONENT_FLAGS.items():
            if getattr(self, fld):
                out[flag] = list(getattr(self, fld))
        if self.train:
            out["train"] = [str(d) for d in self.train]
        if self.eval:
            out["eval"] = [str(d) for d in self.eval]
        if self.eval_folds:
            out["eval_folds"] = list(self.eval_folds)
        if self.options:
            out["options"] = _plain(self.options)
        settings = dataclasses.asdict(self.training)
        out["training"] = {k: _plain(settings[k]) for k in settings if k in (self.training_given or ())}
        out.update(seed=self.seed, reports=str(self.reports), force=bool(self.force))
        if self.skip_bad:
            out["skip_bad"] = True
        if self.protocol != "verification":
            out["protocol"] = self.protocol
        out["resume"] = bool(self.resume)
        if self.intervals != IntervalSettings():
            out["intervals"] = dataclasses.asdict(self.intervals)
        if self.groups:
            out["groups"] = self.groups
        if self.engine:
            out["engine"] = self.engine
        if self.flip_test:
            out["flip_test"] = self.flip_test
        if launcher:
            out["launcher"] = {k: _plain(v) for k, v in dataclasses.asdict(self.launcher).items() if k != "docker"}
        return out

    def merged(self, overrides: Mapping[str, Any]) -> "RunConfig":
        """A copy with ``overrides`` (only what the user gave) taking precedence.

        Keys are field names; ``options`` merge per component and key,
        ``training`` and ``launcher`` per setting.
        """
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key == "options":
                merged = {k: dict(v) for k, v in self.options.items()}
                for comp, kv in _options(value).items():
                    merged.setdefault(comp, {}).update(kv)
                changes["options"] = merged
            elif key == "training":
                changes["training"] = _settings(
                    TrainSettings, {**dataclasses.asdict(self.training), **dict(value)}, "training", source="flags")
                changes["training_given"] = frozenset(self.training_given or ()) | frozenset(value)
            elif key == "intervals" and isinstance(value, Mapping):
                changes["intervals"] = _settings(
                    IntervalSettings, {**dataclasses.asdict(self.intervals), **dict(value)}, "intervals",
                    source="flags")
            elif key == "launcher" and isinstance(value, Mapping):
                changes["launcher"] = _settings(
                    LauncherSettings, {**dataclasses.asdict(self.launcher), **dict(value)}, "launcher", source="flags")
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
        * landmarker -> landmarks runs (landmarkers only; the boxes come from the annotations);
        * nothing -> the default: ``mobilefacenet`` x ``arcface`` on ``synthetic``
          with :data:`DEFAULT_RUN_TRAINING` for every setting not given.

        With ``registry``, every name is checked (with "did you mean"),
        ``-o`` options are validated and stored as their options dataclass
        converted them, and a backbone and loss of different frameworks are
        refused.
        """
        cfg = self.with_default_run()
        combos = cfg._combos()
        if registry is not None:
            cfg._validate(registry, combos)
        runs = [cfg._run_spec(task, comps) for task, comps in combos]
        if registry is not None:
            runs = cfg._converted_options(registry, runs)
        cfg._check_option_targets(runs, registry)
        if self.flip_test and not any("backbone" in r.components for r in runs):
            raise ConfigError(f"--flip-test {self.flip_test}: only backbone runs take it; a recognizer states its "
                              "own flip fusion (e.g. -o onnx.flip=sum): drop --flip-test or add --backbone")
        if self.engine and not any("backbone" in r.components for r in runs):
            raise ConfigError(f"--engine {self.engine}: only backbone runs take an engine; recognizers, detectors, "
                              "landmarkers, liveness models and inpainters run on their own runtimes: drop --engine "
                              "or add --backbone")
        return runs

    def with_default_run(self) -> "RunConfig":
        """This config, or — when it names no component — the default run:
        ``mobilefacenet`` x ``arcface`` with :data:`DEFAULT_RUN_TRAINING` for
        every training setting and :data:`DEFAULT_RUN_OPTIONS` for every
        component the user did not give (none of its length
        settings once the user gave one of :data:`TRAINING_LENGTH`)."""
        if any(getattr(self, f) for f, _ in COMPONENT_FLAGS.values()):
            return self
        given = set(self.training_given or ())
        if given & set(TRAINING_LENGTH):
            given |= {*TRAINING_LENGTH, "time_budget"}
        defaults = {k: v for k, v in DEFAULT_RUN_TRAINING.items() if k not in given}
        used = {DEFAULT_DATASET} if not (self.train or self.eval) else {r.name for r in (*self.train, *self.eval)}
        options = {**{k: dict(v) for k, v in DEFAULT_RUN_OPTIONS.items() if k in used}, **self.options}
        return dataclasses.replace(self, backbones=(DEFAULT_BACKBONE,), losses=(DEFAULT_LOSS,),
                                   training=dataclasses.replace(self.training, **defaults), options=options,
                                   flip_test=self.flip_test or DEFAULT_RUN_FLIP_TEST)

    def _combos(self) -> list[tuple[str, dict[str, str]]]:
        """(task, {kind: name}) of every run, in a stable order."""
        backbones = self.backbones or ((DEFAULT_BACKBONE,) if self.losses else ())
        losses = self.losses or ((DEFAULT_LOSS,) if backbones else ())
        dets: tuple[str | None, ...] = self.detectors or (None,)
        combos: list[tuple[str, dict[str, str]]] = []
        if self.landmarkers:
            return self._landmark_combos()
        if self.protocol == "tracking":
            raise ConfigError("--protocol tracking follows faces with a landmarker: add --landmarker NAME "
                              "(e.g. dlib_68) and --eval video=PATH")

        def add(task: str, comps: dict[str, str], det: str | None) -> None:
            combos.append((task, comps if det is None else {**comps, "detector": det}))

        if self.inpainters and backbones:
            self._check_inpainting_verifiers(backbones)
        for b, d in itertools.product(backbones if not self.inpainters else (), dets):
            if self.options.get(b, {}).get("weights") and not self.train:
                add("recognition", {"backbone": b}, d)  # pretrained, nothing to train on: evaluate as is
                continue
            for loss in losses:
                add("recognition", {"backbone": b, "loss": loss}, d)
        if self.inpainters:
            verifiers = [("recognizer", r) for r in self.recognizers] + [("backbone", b) for b in backbones]
            for i, v, d in itertools.product(self.inpainters, verifiers or [None], dets):
                add("inpainting", {"inpainter": i} | ({v[0]: v[1]} if v else {}), d)
        else:
            for r, d in itertools.product(self.recognizers, dets):
                add("recognition", {"recognizer": r}, d)
        for lv, d in itertools.product(self.liveness, dets):
            add("liveness", {"liveness": lv}, d)
        if self.detectors and not (backbones or self.recognizers or self.liveness or self.inpainters):
            combos.extend(("detection", {"detector": d}) for d in self.detectors)
        return combos

    def _landmark_combos(self) -> list[tuple[str, dict[str, str]]]:
        """One landmarks run per landmarker; other components cannot join them yet.  With
        ``--protocol tracking``: one tracking run per landmarker (x --detector, which finds the face)."""
        if self.protocol == "tracking":
            return [("tracking", {"landmarker": name, **({"detector": d} if d else {})})
                    for name, d in itertools.product(self.landmarkers, self.detectors or (None,))]
        others = [f"--{flag}" for flag, (fld, _k) in COMPONENT_FLAGS.items()
                  if flag != "landmarker" and getattr(self, fld)]
        if others:
            return self._aligned_by_landmarker(others)
        return [("landmarks", {"landmarker": name}) for name in self.landmarkers]

    def _aligned_by_landmarker(self, others: list[str]) -> list[tuple[str, dict[str, str]]]:
        """``--landmarker`` beside a recognition, inpainting or liveness model: each of that grid's runs
        once per landmarker, which places the five alignment points in the detector's box
        (docs/landmarks.md).  A liveness model that cuts its own patches from the box refuses it
        (:meth:`_check_landmarker_target`, with the registry)."""
        base = dataclasses.replace(self, landmarkers=())._combos()
        wrong = sorted({task for task, _ in base if task not in LANDMARKER_TASKS})
        if wrong or not base:
            raise ConfigError(
                f"--landmarker with {', '.join(others)}: a landmarker places the alignment points of recognition, "
                f"identification, inpainting and liveness runs (a --backbone, --recognizer, --inpainter or "
                f"--liveness), not of {', '.join(wrong) or 'these'} runs; drop --landmarker there, or run it alone "
                "for the landmarks benchmark")
        return [(task, {**comps, "landmarker": name}) for task, comps in base for name in self.landmarkers]

    @staticmethod
    def _check_landmarker_target(specs: Mapping[str, Any]) -> None:
        """A liveness model beside ``--landmarker`` must align its crops on points (the rule:
        :func:`harness.tasks.liveness.landmarker_refusal`)."""
        if "landmarker" not in specs or "liveness" not in specs:
            return
        from harness.tasks.liveness import landmarker_refusal

        refusal = landmarker_refusal(specs["liveness"], specs["landmarker"].name)
        if refusal:
            raise ConfigError(refusal)

    def _check_inpainting_verifiers(self, backbones: tuple[str, ...]) -> None:
        """An inpainting run's backbone is its verifier: pretrained weights, nothing to train."""
        unweighted = [b for b in backbones if not self.options.get(b, {}).get("weights")]
        if unweighted or self.losses:
            raise ConfigError(
                "with --inpainter, a --backbone is the verification model of the meshface protocol and needs "
                f"weights (e.g. -o {(unweighted or backbones)[0]}.weights=PATH or a named variant such as "
                "mobilefacenet.weights=casia) and no --loss; --train trains the inpainter"
                + (f"; no weights for {unweighted}" if unweighted else f"; drop --loss {list(self.losses)}"))

    def _run_spec(self, task: str, comps: dict[str, str]) -> RunSpec:
        """The :class:`RunSpec` of one combination, with its data and options."""
        # A pretrained recognizer or backbone and a detection benchmark train nothing.
        trains = not (task in ("detection", "landmarks", "tracking")
                      or (task == "recognition" and "loss" not in comps))
        train, evals = self.train, self.eval
        if task == "recognition" and "loss" in comps:
            train = train or (DataRef(DEFAULT_DATASET),)
            evals = evals or (DataRef(DEFAULT_DATASET),)
        elif not evals:
            raise ConfigError(
                f"a {task} run ({', '.join(comps.values())}) needs data to evaluate on: "
                f"add --eval NAME=PATH (see `harness list dataset`)"
            )
        train = train if trains else ()
        protocol = self.protocol if task == "recognition" else "verification"
        engine = self.engine if "backbone" in comps else None
        names = (*comps.values(), *(d.name for d in (*train, *evals)),
                 *(ONE_TO_N_OPTIONS if protocol != "verification" else ()), *((engine,) if engine else ()),
                 *(("tracking",) if task == "tracking" else ()))
        return RunSpec(task=task, components=comps, train=train, eval=evals,
                       options={n: dict(self.options[n]) for n in names if n in self.options},
                       training=self.training, seed=self.seed, eval_folds=self.eval_folds,
                       skip_bad=bool(self.skip_bad), protocol=protocol, intervals=self.intervals,
                       groups=self.groups if task == "recognition" else None, engine=engine,
                       flip_test=self.flip_test if "backbone" in comps else None)

    def _validate(self, registry: "Registry", combos: list[tuple[str, dict[str, str]]]) -> None:
        """Every component name known, its options valid, backbone and loss of one framework."""
        for _task, comps in combos:
            specs = {kind: registry.get(kind, name) for kind, name in comps.items()}
            for spec in specs.values():
                if spec.name in self.options:
                    spec.make_options(self.options[spec.name])
            b, l = specs.get("backbone"), specs.get("loss")
            if b is not None and l is not None and l.framework not in ("none", b.framework):
                raise ConfigError(
                    f"backbone {b.name!r} is a {b.framework} model but loss {l.name!r} is "
                    f"{l.framework}: pick a loss of the same framework "
                    f"(`harness list loss` shows each one's framework)"
                )
            if self.engine and b is not None:
                self._check_engine(registry, specs)
            self._check_landmarker_target(specs)

    def _check_engine(self, registry: "Registry", specs: Mapping[str, Any]) -> None:
        """``--engine``: a known engine that runs the backbone's framework or adapts these components."""
        engine = registry.get("engine", self.engine)
        adapts = engine.meta.get("adapts") or {}
        for kind in ("backbone", "loss"):
            spec = specs.get(kind)
            if spec is None or spec.framework in ("none", engine.framework):
                continue
            if spec.name not in adapts.get(kind, ()):
                runs = ", ".join(adapts.get(kind, ())) or f"only {engine.framework} {kind}s"
                raise ConfigError(
                    f"engine {engine.name!r} cannot run {kind} {spec.name!r} ({spec.framework}); "
                    f"it runs: {runs}. Drop --engine or pick one of those")

    def _converted_options(self, registry: "Registry", runs: list[RunSpec]) -> list[RunSpec]:
        """``runs`` with each option as its options dataclass converted it (and every dataset checked)."""
        specs = {ref.name: registry.get("dataset", ref.name) for r in runs for ref in (*r.train, *r.eval)}
        specs.update({name: registry.get(kind, name) for r in runs for kind, name in r.components.items()})
        specs.update({r.engine: registry.get("engine", r.engine) for r in runs if r.engine})
        converted = {name: specs[name].option_values(values)
                     for name, values in self.options.items() if name in specs}
        for name, where in TASK_OPTION_SETTINGS.items():  # -o identification.trials=5 as YAML's 5: one hash
            if name in self.options and any(name in r.options for r in runs):
                module, _, cls = where.partition(":")
                settings = getattr(importlib.import_module(module), cls).from_options(self.options[name])
                converted[name] = {k: _plain(getattr(settings, k)) for k in self.options[name]}
        return [dataclasses.replace(r, options={n: converted.get(n, r.options[n]) for n in r.options}) for r in runs]

    def _check_option_targets(self, runs: list[RunSpec], registry: "Registry | None" = None) -> None:
        """Every ``-o NAME.…`` names a component or dataset of some run (an engine's
        options need ``--engine NAME``, which says which engine they are for)."""
        selected = {n for r in runs for n in (*r.components.values(), *(d.name for d in (*r.train, *r.eval)),
                                              *(ONE_TO_N_OPTIONS if r.protocol != "verification" else ()),
                                              *((r.engine,) if r.engine else ()),
                                              *(("tracking",) if r.task == "tracking" else ()))}
        stray = sorted(set(self.options) - selected)
        if stray and registry is not None and stray[0] in registry.names("engine"):
            raise ConfigError(
                f"-o {short_repr(stray[0])}.… sets options of the {stray[0]!r} engine: add --engine {stray[0]} "
                f"so the run names that engine and takes its options (`harness list engine`)")
        if stray:
            raise ConfigError(
                f"-o {short_repr(stray[0])}.… names a component that is not part of this run; "
                f"selected components and datasets: {', '.join(sorted(selected))}"
            )


#: Task settings given as ``-o NAME.KEY=VALUE`` -> the class that validates them
#: (``from_options``); stored as it converted them, so a flag and YAML hash alike.
TASK_OPTION_SETTINGS: Mapping[str, str] = {
    "identification": "harness.tasks.identification:IdentificationSettings",
    "search": "harness.metrics.search:SearchOptions",
    "tracking": "harness.tasks.tracking:TrackerSettings",
}

#: ``-o NAME.KEY=VALUE`` groups of a 1:N run (--protocol other than verification): the protocol's
#: settings (harness.tasks.identification) and the search's (harness.metrics.search)
ONE_TO_N_OPTIONS = ("identification", "search")


#: YAML key -> RunConfig field: the flag names for components, the field name otherwise.
YAML_KEYS: Mapping[str, str] = {
    **{flag: fld for flag, (fld, _kind) in COMPONENT_FLAGS.items()},
    **{f.name: f.name for f in dataclasses.fields(RunConfig)
       if not f.metadata.get("internal") and f.name not in {fld for fld, _ in COMPONENT_FLAGS.values()}},
}


def parse_option_flags(flags: Iterable[str]) -> dict[str, dict[str, str]]:
    """Parse repeated ``-o component.key=value`` flags into a nested mapping."""
    out: dict[str, dict[str, str]] = {}
    for flag in flags:
        target, sep, value = flag.partition("=")
        comp, dot, key = target.partition(".")
        if not (sep and dot and comp.strip() and key.strip()):
            raise ConfigError(
                f"-o {short_repr(flag)} is not COMPONENT.KEY=VALUE (e.g. -o lresnet50.dropout=0.1)"
            )
        out.setdefault(comp.strip(), {})[key.strip()] = value.strip()
    return out


def load_yaml(path: str | Path) -> RunConfig:
    """Read a ``--config`` YAML file into a :class:`RunConfig`.

    :raises ConfigError: one line, for a file that cannot be read, is not
        UTF-8 text, is not YAML or does not fit the schema.
    """
    import yaml

    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{p}: the config is over {MAX_CONFIG_BYTES >> 20} MiB; a run config is a short YAML file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: the config is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "give a YAML file saved as UTF-8") from None
    if "\x00" in text:
        raise ConfigError(f"{p}: the config is a binary file (it holds NUL bytes), not YAML")
    try:
        data = yaml.safe_load(text) or {}
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise ConfigError(f"{p} is not valid YAML: {one_line(exc)}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: expected a mapping of settings at the top level, got {type(data).__name__}")
    return RunConfig.from_mapping(data, source=str(p))
