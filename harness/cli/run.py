"""``harness run``: train and/or evaluate the chosen combinations."""

from __future__ import annotations

import contextlib
import json
import os

import click
from click.core import ParameterSource

from harness.cli._params import ComponentName
from harness.config import COMPONENT_FLAGS
from harness.errors import ConfigError

_TRAIN_FLAGS = {
    "epochs": "epochs",
    "max_steps": "max_steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "time_budget": "time_budget",
    "device": "device",
    "workers": "workers",
    "init": "init",
    "log": "log",
}


_LAUNCHER_FLAGS = ("docker", "image", "gpus", "network", "nproc_per_node", "nnodes", "node_rank",
                   "rdzv_endpoint", "workers")


#: ``--slurm-<name>`` flags -> ``launcher.slurm.<name>`` (harness.config.SlurmSettings).
_SLURM_FLAGS = ("partition", "gpus_per_node", "cpus_per_task", "time", "mem", "extra", "setup", "log_dir")


def _cluster_options(f):
    """``--launcher`` and the ``--slurm-*`` flags: each cell of a grid as a job through submitit."""
    opts = [
        click.option("--launcher", "cluster", type=click.Choice(["local", "slurm", "submitit-local"]),
                     default="local", show_default=True,
                     help="local: this process (or torchrun / Docker); slurm: each cell of the grid is one Slurm "
                          "job submitted through submitit; submitit-local: the same jobs as processes on this "
                          "machine (docs/scale.md)."),
        click.option("--slurm-partition", "slurm_partition", metavar="NAME", help="Jobs' partition (sbatch -p)."),
        click.option("--slurm-gpus-per-node", "slurm_gpus_per_node", type=int, metavar="N",
                     help="GPUs of each job (default 0)."),
        click.option("--slurm-cpus-per-task", "slurm_cpus_per_task", type=int, metavar="N", help="CPUs of each job."),
        click.option("--slurm-time", "slurm_time", metavar="TIME",
                     help="Time limit of each job: minutes (90), H:MM:SS or D-HH:MM:SS (default 60)."),
        click.option("--slurm-mem", "slurm_mem", metavar="SIZE", help="Memory of each job, e.g. 32G."),
        click.option("--slurm-extra", "slurm_extra", multiple=True, metavar="KEY=VALUE",
                     help="A further sbatch option, e.g. account=vision or qos=high (repeatable)."),
        click.option("--slurm-setup", "slurm_setup", multiple=True, metavar="LINE",
                     help="A shell line each job runs first, e.g. 'module load cuda' (repeatable)."),
        click.option("--slurm-log-dir", "slurm_log_dir", metavar="DIR",
                     help="Where the jobs' pickles and logs go (default: REPORTS/slurm)."),
        click.option("--no-wait", "no_wait", is_flag=True,
                     help="With --launcher slurm|submitit-local: print the job ids and the log folder and return."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _cluster_settings(kw: dict, given, base) -> dict:
    """``launcher`` overrides from ``--launcher``, ``--slurm-*`` and ``--no-wait`` (merged over the YAML's)."""
    import dataclasses

    out: dict = {}
    if given("cluster"):
        out["cluster"] = None if kw["cluster"] == "local" else kw["cluster"]
    slurm = {name: kw[f"slurm_{name}"] for name in _SLURM_FLAGS if given(f"slurm_{name}")}
    if given("no_wait"):
        slurm["wait"] = not kw["no_wait"]
    if slurm:
        if out.get("cluster", base.launcher.cluster) is None:
            flags = [f"--slurm-{n.replace('_', '-')}" if n != "wait" else "--no-wait" for n in slurm]
            raise ConfigError(f"{', '.join(flags)}: only meaningful with --launcher slurm or submitit-local; "
                              "add --launcher or drop it")
        out["slurm"] = {**dataclasses.asdict(base.launcher.slurm), **slurm}
    return out


def _component_options(f):
    for flag, (_field, kind) in reversed(list(COMPONENT_FLAGS.items())):
        f = click.option(
            f"--{flag}",
            f"{flag}s" if flag != "liveness" else "liveness",
            multiple=True,
            type=ComponentName(kind),
            metavar="NAME",
            help=f"A {kind} to run (repeat for a grid; `harness list {kind}`).",
        )(f)
    return f


@click.command("run")
@_component_options
@click.option("--train", "train", multiple=True, metavar="NAME[=PATH]",
              help="Training data (repeatable), e.g. synthetic or att=../shared/data/att_faces.")
@click.option("--eval", "eval_", multiple=True, metavar="NAME[=PATH]",
              help="Evaluation data (repeatable), e.g. lfw=../shared/data/lfw_home.")
@click.option("-o", "--option", "options", multiple=True, metavar="COMPONENT.KEY=VALUE",
              help="A component option, e.g. -o lresnet50.dropout=0.1 (repeatable).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), metavar="YAML",
              help="Read settings from a YAML file; flags given here win.")
@click.option("--eval-folds", "eval_folds", multiple=True, type=int, metavar="K",
              help="Evaluate on these folds only (0-based, repeatable), e.g. one LFW fold: --eval-folds 0.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--reports", default="reports", show_default=True, metavar="DIR",
              help="Where runs and the HTML report are written.")
@click.option("--force", is_flag=True, help="Rerun even if an identical finished run exists.")
@click.option("--no-resume", "no_resume", is_flag=True, help="Start training afresh instead of resuming.")
@click.option("--skip-bad", "skip_bad", is_flag=True,
              help="Leave out unreadable images (and the pairs that use them); counted and listed in the report.")
@click.option("--protocol", type=click.Choice(["verification", "identification", "open-set", "all", "tracking"]),
              default="verification", show_default=True,
              help="What a recognition run measures: 1:1 pairs, closed-set or open-set 1:N search, or every "
                   "protocol the data supports (1:N settings: -o identification.KEY=VALUE); tracking: a "
                   "--landmarker tracks faces through --eval video=PATH (docs/landmarks.md).")
@click.option("--gallery", default=None, metavar="LIST",
              help="1:N protocol defined by files: the gallery images, one 'PATH [IDENTITY]' per line "
                   "(with --probes and --protocol identification or open-set; -o identification.gallery=LIST).")
@click.option("--probes", default=None, metavar="LIST",
              help="The probe images of a --gallery protocol, one 'PATH [IDENTITY]' per line.")
@click.option("--groups", default=None, metavar="FILE.csv",
              help="Identity or image -> attributes (identity,sex,age…): a verification run adds per-group "
                   "FMR / FNMR at one global threshold, their ratios and the FDR (docs/metrics.md).")
@click.option("--engine", default=None, type=ComponentName("engine"), metavar="NAME",
              help="The engine that trains and runs the backbone: torch (default) or tf (Keras twins of the "
                   "same backbones and losses; docs/tf.md).")
@click.option("--flip-test", "flip_test", type=click.Choice(["none", "sum", "concat"]), default=None,
              help="Test-time flip fusion of a backbone's embeddings: none, sum (f(x) + f(flip x), insightface's "
                   "Accuracy-Flip) or concat; default: the model's own rule (the default run: sum).")
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option("--max-steps", type=int, default=None, help="Stop training after this many steps.")
@click.option("--time-budget", type=float, default=None, metavar="SECONDS",
              help="Stop training when this much time has passed (0: no time budget, "
                   "also switching off the default run's).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=int, default=None, metavar="N",
              help="Worker processes: evaluation decodes, detects and aligns in N processes (default: the "
                   "usable cores for 256+ images; 0: in-process); training's DataLoader uses N (default 0).")
@click.option("--init", default=None, metavar="CHECKPOINT", help="Fine-tune from these weights.")
@click.option("--log", "log", multiple=True, metavar="NAME[,NAME]",
              help="Watch training: tensorboard (on by default when installed: event files in each run "
                   "folder), mlflow (adds an MLflow run: MLFLOW_TRACKING_URI, else REPORTS/mlruns) or none. "
                   "Repeatable or a comma list (docs/tracking.md).")
@click.option("--docker", is_flag=True,
              help="Run inside a container of --image through the Docker SDK (reports mounted "
                   "read-write, data read-only, no network, your uid:gid).")
@click.option("--image", default="facebench", show_default=True, metavar="IMAGE",
              help="With --docker: the image (docker build -f Dockerfile.gpu -t facebench .).")
@click.option("--gpus", default=None, metavar="all|N|ID,ID",
              help="With --docker: GPUs for the container (as docker run --gpus).")
@click.option("--network", default="none", show_default=True, metavar="MODE",
              help="With --docker: the container's network (none: no network).")
@click.option("--nproc-per-node", "nproc_per_node", type=int, default=1, show_default=True, metavar="N",
              help="Train with DDP in N processes on this node, launched through torchrun "
                   "(NCCL on GPUs, gloo on CPU).")
@click.option("--nnodes", type=int, default=1, show_default=True, metavar="M",
              help="Number of nodes of a multi-node run (needs --rdzv-endpoint).")
@click.option("--node-rank", "node_rank", type=int, default=0, show_default=True, metavar="R",
              help="This node's rank in a multi-node run.")
@click.option("--rdzv-endpoint", "rdzv_endpoint", default=None, metavar="HOST:PORT",
              help="Where the nodes of a multi-node run meet (torchrun's c10d rendezvous).")
@_cluster_options
@click.option("--dry-run", is_flag=True, help="Print the expanded grid of runs and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print the grid as JSON.")
@click.pass_context
def command(ctx: click.Context, **kw) -> None:
    """Train and evaluate chosen combinations; every run is written to
    REPORTS/runs/<run-id>/ and rendered into REPORTS/index.html.

    With no component flags it trains the default combination
    (mobilefacenet + arcface on the synthetic dataset) and evaluates it.

    \b
    Examples:
      harness run
      harness run --backbone lresnet50 --loss arcface --train att=../shared/data/att_faces
      harness run --backbone resnet20 --loss softmax --loss arcface --dry-run
      harness run --recognizer dlib_resnet --detector mtcnn --eval lfw=../shared/data/lfw_home
      harness run --landmarker dlib_68 --eval aflw2000=../shared/data/landmarks/aflw2000_prnet
      harness run --backbone resnet20 --loss partial_fc --nproc-per-node 2
      harness run --docker --gpus all --nproc-per-node 4
      harness run --backbone resnet20 --loss softmax --loss arcface --launcher slurm --slurm-gpus-per-node 1
    """
    from harness.config import RunConfig, load_yaml, parse_option_flags
    from harness.registry import get_registry

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)

    base = load_yaml(kw["config_path"]) if kw["config_path"] else RunConfig()
    overrides: dict = {}
    for flag, (field_name, _kind) in COMPONENT_FLAGS.items():
        param = f"{flag}s" if flag != "liveness" else "liveness"
        if kw[param]:
            overrides[field_name] = tuple(kw[param])
    if kw["train"]:
        overrides["train"] = tuple(kw["train"])
    if kw["eval_"]:
        overrides["eval"] = tuple(kw["eval_"])
    if kw["eval_folds"]:
        overrides["eval_folds"] = tuple(kw["eval_folds"])
    engine_opts = [o.partition("=")[2].strip() for o in kw["options"] if o.partition("=")[0].strip() == "engine"]
    if engine_opts and not given("engine"):  # `-o engine=tf` is `--engine tf`
        kw["engine"] = ComponentName("engine").convert(engine_opts[-1], None, ctx)
        overrides["engine"] = kw["engine"]
    options = [o for o in kw["options"] if o.partition("=")[0].strip() != "engine"]
    options += _list_options(kw["gallery"], kw["probes"], kw["protocol"] if given("protocol") else base.protocol)
    if options:
        overrides["options"] = parse_option_flags(options)
    for name in ("seed", "reports", "force", "skip_bad", "protocol", "groups", "engine", "flip_test"):
        if given(name):
            overrides[name] = kw[name]
    if given("no_resume"):
        overrides["resume"] = not kw["no_resume"]
    training = {field: kw[param] for param, field in _TRAIN_FLAGS.items() if given(param)}
    if training:
        overrides["training"] = training
    launcher = {name: kw[name] for name in _LAUNCHER_FLAGS if given(name)}
    launcher.update(_cluster_settings(kw, given, base))
    if launcher:
        overrides["launcher"] = launcher
    cfg = base.merged(overrides)
    if not cfg.launcher.docker:
        stray = [f"--{n.replace('_', '-')}" for n in ("image", "gpus", "network") if given(n)]
        if stray:
            raise ConfigError(f"{', '.join(stray)}: only meaningful with --docker; add --docker or drop it")

    if cfg.groups:  # a bad groups file fails here, in one line, not after detection and embedding
        from harness.formats.groups import read_groups

        read_groups(cfg.groups)
    registry = get_registry()
    runs = cfg.expand(registry)

    if kw["dry_run"]:
        if kw["as_json"]:
            click.echo(json.dumps(
                [{"slug": r.slug(), "config_hash": r.config_hash(), **r.to_dict()} for r in runs], indent=2))
        else:
            click.echo(f"{len(runs)} run(s):")
            for r in runs:
                comps = " ".join(f"{k}={v}" for k, v in r.components.items())
                data = ""
                if r.train:
                    data += f" train={','.join(map(str, r.train))}"
                data += f" eval={','.join(map(str, r.eval))}"
                click.echo(f"  [{r.task}] {comps}{data}  ({r.config_hash()})")
        return

    from harness.run_loggers import require

    require(cfg.training.log)  # a logger asked for by name but not installed: one line, before any work
    from harness.runner import torchrun

    if cfg.launcher.cluster and not torchrun.in_worker():
        from harness.runner.slurm import submit_grid

        submit_grid(runs, cfg, registry=registry)
    elif cfg.launcher.docker and not torchrun.in_worker():
        from harness.runner.docker import run_in_docker

        run_in_docker(cfg)
    elif torchrun.in_worker():
        with _recorded(cfg, runs, here=os.environ.get("RANK") == "0"):
            torchrun.run_grid_distributed(runs, cfg, registry=registry)
    elif cfg.launcher.distributed or given("nproc_per_node"):
        from harness.runner._lifecycle import preflight

        preflight(runs, registry)  # one clear line here rather than one per worker
        torchrun.launch(cfg)
    else:
        from harness.runner.local import run_grid

        with _recorded(cfg, runs):
            run_grid(runs, cfg, registry=registry)


def _list_options(gallery: str | None, probes: str | None, protocol: str | None) -> list[str]:
    """``--gallery`` / ``--probes``: the ``-o identification.gallery/probes`` of a 1:N run."""
    if gallery is None and probes is None:
        return []
    if gallery is None or probes is None:
        raise ConfigError("--gallery and --probes come as a pair: give both image lists ('PATH [IDENTITY]' "
                          "per line), or neither")
    if protocol not in ("identification", "open-set", "all"):
        raise ConfigError("--gallery/--probes define a 1:N search: add --protocol identification (closed set) "
                          "or --protocol open-set")
    return [f"identification.gallery={gallery}", f"identification.probes={probes}"]


@contextlib.contextmanager
def _recorded(cfg, runs, *, here: bool = True):
    """With ``--log mlflow``: after the grid (finished, failed or interrupted), each of its
    runs is recorded in MLflow with its report (harness.run_loggers.record_grid)."""
    try:
        yield
    finally:
        if here and "mlflow" in cfg.training.log:
            from harness.run_loggers import record_grid

            record_grid(cfg.reports, [r.config_hash() for r in runs], cfg.training.log)
