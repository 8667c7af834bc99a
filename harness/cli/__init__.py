"""The ``harness`` command line.

Each command lives in its own module and is imported only when invoked, so
``harness --help`` stays fast and framework-free.  Plugins add commands
through the ``register_commands`` hook.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

from harness import __version__
from harness.errors import HarnessError

__all__ = ["BUILTIN_COMMANDS", "cli", "main"]

#: command name -> "module:attr" of the click command (one module per command).
BUILTIN_COMMANDS: dict[str, str] = {
    "check-model": "harness.cli.check_model:command",
    "data": "harness.cli.data:command",
    "doctor": "harness.cli.doctor:command",
    "export": "harness.cli.export:command",
    "list": "harness.cli.list_cmd:command",
    "plugins": "harness.cli.plugins_cmd:command",
    "profile": "harness.cli.profile:command",
    "report": "harness.cli.report:command",
    "run": "harness.cli.run:command",
    "runs": "harness.cli.runs:command",
    "score": "harness.cli.score:command",
    "threshold": "harness.cli.threshold:command",
    "train-detector": "harness.cli.train_detector:command",
    "train-landmarker": "harness.cli.train_landmarker:command",
}

_DEBUG = {"on": False}


def _import_command(target: str) -> click.Command:
    import importlib

    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class LazyGroup(click.Group):
    """A group whose built-in commands are imported on use and whose plugin
    commands come from the registry."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(BUILTIN_COMMANDS)
        names.update(spec.name for spec, _ in self._plugin_commands())
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in BUILTIN_COMMANDS:
            return _import_command(BUILTIN_COMMANDS[name])
        for spec, plugin in self._plugin_commands():
            if spec.name == name:
                cmd = spec.command
                return _import_command(cmd) if isinstance(cmd, str) else cmd
        return None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            from harness._values import did_you_mean, short_repr

            name = args[0] if args else ""
            hint = did_you_mean(name, self.list_commands(ctx), n=2)
            if hint and "No such command" in str(exc):
                raise click.UsageError(f"No such command {short_repr(name)}{hint}", ctx) from None
            raise

    @staticmethod
    def _plugin_commands() -> list[tuple[Any, str]]:
        from harness.registry import get_registry

        reg = get_registry()
        return [(spec, p) for spec, p in reg.commands() if spec.name not in BUILTIN_COMMANDS]


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="facebench")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """facebench: benchmark face detection, recognition, liveness and inpainting.

    \b
    Examples:
      harness list                                  every component, by kind
      harness run --dry-run --backbone resnet20 --loss arcface --loss softmax
      harness run --recognizer dlib_resnet --eval lfw=../shared/data/lfw_home
    """
    _DEBUG["on"] = debug or _DEBUG["on"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one clear message and a non-zero exit on error."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _DEBUG["on"] = "--debug" in argv or os.environ.get("FACEBENCH_DEBUG") == "1"
    try:
        rv = cli.main(args=argv, prog_name="harness", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    except HarnessError as exc:
        if _DEBUG["on"]:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # an unexpected bug: say so, keep the trace for --debug
        if _DEBUG["on"]:
            traceback.print_exc()
        else:
            click.echo(
                f"error: {type(exc).__name__}: {exc}\n(an unexpected error; rerun with --debug "
                "for the traceback and report it)",
                err=True,
            )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
