"""``harness data pairs``: identity folders -> LFW-format pairs.txt."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["command"]


@click.command("pairs")
@click.argument("identity_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The pairs file to write (LFW format).")
@click.option("--folds", default=10, show_default=True, type=click.IntRange(1))
@click.option("--pairs-per-fold", default=300, show_default=True, type=click.IntRange(1),
              help="Genuine pairs per fold (and as many impostor pairs).")
@click.option("--seed", default=0, show_default=True, type=int)
def command(identity_dir: Path, output: Path, folds: int, pairs_per_fold: int, seed: int) -> None:
    """Generate LFW-format verification pairs over IDENTITY_DIR.

    Each fold holds PAIRS_PER_FOLD genuine pairs then as many impostor pairs;
    identities are split between folds so none repeats across folds where the
    data allows it.  Image numbers are the files' numbers: Name_0001.jpg -> 1
    (LFW), 7.pgm -> 7 (AT&T).
    """
    from harness.formats.folders import scan_identities
    from harness.formats.pairs import generate_pairs, parse_pairs, write_pairs

    ids = scan_identities(identity_dir)
    numbers: dict[str, list[int]] = {}
    unnumbered = 0
    for ident in ids:
        nums = [n for n in ident.numbers if n is not None]
        unnumbered += len(ident.numbers) - len(nums)
        if nums:
            numbers[ident.name] = nums
    if unnumbered:
        click.echo(f"note: {unnumbered} image(s) have no number in their file name "
                   "(expected Name_0001.jpg or 1.pgm) and cannot appear in pairs", err=True)
    folds_out, warnings = generate_pairs(numbers, folds, pairs_per_fold, seed)
    write_pairs(output, folds_out)
    check = parse_pairs(output)  # read back: the file we wrote must parse
    for w in warnings:
        click.echo(f"note: {w}", err=True)
    n_ids = len({n for p in check.pairs for n in (p.name1, p.name2)})
    click.echo(f"wrote {output}: {check.folds} folds x ({check.per_fold} genuine + {check.per_fold} impostor) "
               f"= {len(check.pairs)} pairs over {n_ids} identities")
