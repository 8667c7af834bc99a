"""Run a tiny tf-engine training in its own process (used by test_tf_resume.py).

    python _tf_resume_script.py WORKDIR OUT.npz [DELAY_S]

Trains the tiny Keras net (BatchNorm, dropout 0.3) with the center loss
(trainable classes, non-trainable moving centres) and AdamW for 30 steps
(checkpoint every 5, 4 epochs of 8 batches) with resume=True, on one
TensorFlow thread, then writes the final variables and history to OUT.npz.
DELAY_S slows each image load so that the test can kill the process
mid-run; it does not change any number.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _tf_fixtures import quiet_tensorflow, synthetic_imageset, tiny_keras_model, tiny_loss, tiny_spec  # noqa: E402

STEPS = 30


def run(workdir: Path, delay: float = 0.0) -> dict[str, np.ndarray]:
    """The training every process of the test runs; returns its final state as arrays."""
    from facebench_plugins.engines._tf_trainer import rng_variables
    from facebench_plugins.engines.options import TFEngineOptions
    from facebench_plugins.engines.tf_engine import TFEngine
    from harness.config import TrainSettings

    engine = TFEngine(TFEngineOptions(threads=1, saved_model=False))
    engine.seed_everything(7)
    model, loss = tiny_keras_model(dropout=0.3), tiny_loss("center", classes=8)
    settings = TrainSettings(epochs=4, max_steps=STEPS, batch_size=8, lr=0.05, warmup_steps=3,
                             checkpoint_every=5, grad_clip=1.0, optimizer="adamw", weight_decay=5e-4)
    out = engine.train(
        model, loss, synthetic_imageset(n=64, classes=8, delay=delay), backbone_spec=tiny_spec(),
        settings=settings, workdir=workdir, seed=7, resume=True, progress=False,
        on_epoch_end=lambda epoch, m: {"mean_w": float(np.mean(m.get_layer("fc").kernel.numpy()))},
    )
    arrays = {f"model/{w.path}": w.numpy() for w in out.model.weights}
    arrays.update({f"loss/{v.name}": v.numpy() for v in out.loss_fn.variables})
    arrays.update({f"rng/{i}": v.numpy() for i, v in enumerate(rng_variables(out.model))})
    about = {"history": out.history, "steps": out.steps, "resumed_from_step": out.resumed_from_step,
             "stopped_by": out.stopped_by}
    arrays["about"] = np.frombuffer(json.dumps(about).encode(), dtype=np.uint8)
    return arrays


def main() -> None:
    quiet_tensorflow()
    workdir, out = Path(sys.argv[1]), Path(sys.argv[2])
    delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    arrays = run(workdir, delay)
    tmp = out.with_name(out.name + ".part.npz")
    np.savez(tmp, **arrays)
    tmp.replace(out)


if __name__ == "__main__":
    main()
