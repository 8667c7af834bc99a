"""Run a tiny training in its own process (used by the resume-equivalence test).

    python _engine_resume_script.py WORKDIR OUT.pt [DELAY_S]

Trains TinyNet + SoftmaxLoss for 30 steps (checkpoint every 5, 4 epochs of
8 batches, dropout on) with resume=True, then saves the final weights and
history to OUT.pt.  The test imports :func:`run` for the uninterrupted
reference.  DELAY_S slows each image load so that the test can kill
the process mid-run; it does not change any number.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from _engine_fixtures import SoftmaxLoss, TinyNet, random_imageset, tiny_spec  # noqa: E402

from facebench_plugins.engines.torch_engine import build  # noqa: E402
from harness.config import TrainSettings  # noqa: E402


def run(workdir: Path, delay: float = 0.0) -> dict:
    """The training every process of the test runs; returns its final state."""
    torch.set_num_threads(1)
    engine = build(None)
    engine.seed_everything(7)
    model, loss = TinyNet(), SoftmaxLoss(num_classes=8)
    settings = TrainSettings(epochs=4, max_steps=30, batch_size=8, lr=0.05, warmup_steps=3,
                             checkpoint_every=5, grad_clip=1.0)
    result = engine.train(
        model, loss, random_imageset(n=64, classes=8, delay=delay), backbone_spec=tiny_spec(),
        settings=settings, workdir=workdir, seed=7, resume=True, progress=False,
        on_epoch_end=lambda epoch, m: {"mean_w": float(m.fc.weight.detach().mean())},
    )
    return {"model": result.model.state_dict(), "loss": result.loss_fn.state_dict(),
            "history": result.history, "steps": result.steps,
            "resumed_from_step": result.resumed_from_step, "stopped_by": result.stopped_by}


def main() -> None:
    workdir, out = Path(sys.argv[1]), Path(sys.argv[2])
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    torch.save(run(workdir, delay), out)


if __name__ == "__main__":
    main()
