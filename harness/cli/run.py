"""``harness run``: train and/or evaluate the chosen combinations."""

from __future__ import annotations

import json

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
}


_LAUNCHER_FLAGS = ("docker", "image", "gpus", "network", "nproc_per_node", "nnodes", "node_rank",
                   "rdzv_endpoint")


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
@click.option("--protocol", type=click.Choice(["verification", "identification", "open-set", "all"]),
              default="verification", show_default=True,
              help="What a recognition run measures: 1:1 pairs, closed-set or open-set 1:N search, or every "
                   "protocol the data supports (1:N settings: -o identification.KEY=VALUE).")
@click.option("--epochs", type=int, default=1, show_default=True)
@click.option("--max-steps", type=int, default=None, help="Stop training after this many steps.")
@click.option("--time-budget", type=float, default=None, metavar="SECONDS",
              help="Stop training when this much time has passed (0: no time budget, "
                   "also switching off the default run's).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=0.1, show_default=True)
@click.option("--optimizer", type=click.Choice(["sgd", "adamw"]), default="sgd", show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=int, default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--init", default=None, metavar="CHECKPOINT", help="Fine-tune from these weights.")
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
    if kw["options"]:
        overrides["options"] = parse_option_flags(kw["options"])
    for name in ("seed", "reports", "force", "skip_bad", "protocol"):
        if given(name):
            overrides[name] = kw[name]
    if given("no_resume"):
        overrides["resume"] = not kw["no_resume"]
    training = {field: kw[param] for param, field in _TRAIN_FLAGS.items() if given(param)}
    if training:
        overrides["training"] = training
    launcher = {name: kw[name] for name in _LAUNCHER_FLAGS if given(name)}
    if launcher:
        overrides["launcher"] = launcher
    cfg = base.merged(overrides)
    if not cfg.launcher.docker:
        stray = [f"--{n.replace('_', '-')}" for n in ("image", "gpus", "network") if given(n)]
        if stray:
            raise ConfigError(f"{', '.join(stray)}: only meaningful with --docker; add --docker or drop it")

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

    from harness.runner import torchrun

    if cfg.launcher.docker and not torchrun.in_worker():
        from harness.runner.docker import run_in_docker

        run_in_docker(cfg)
    elif torchrun.in_worker():
        torchrun.run_grid_distributed(runs, cfg, registry=registry)
    elif cfg.launcher.distributed or given("nproc_per_node"):
        from harness.runner._lifecycle import preflight

        preflight(runs, registry)  # one clear line here rather than one per worker
        torchrun.launch(cfg)
    else:
        from harness.runner.local import run_grid

        run_grid(runs, cfg, registry=registry)
