"""The example plugin's command: ``harness example-hello``."""

import click


@click.command("example-hello")
@click.option("--name", default="world")
def hello(name: str) -> None:
    """Say hello from a third-party plugin."""
    click.echo(f"hello {name} from facebench-example-plugin")
