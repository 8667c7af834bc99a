"""Train on one device and on two logical CPU devices (MirroredStrategy) in one process.

    python _tf_mirrored_script.py OUT.json WORKDIR

TensorFlow's logical devices must be configured before it initialises, so
this runs in its own process (test_tf_features.py starts it).  With device
``auto`` and two logical CPU devices the tf engine mirrors each step over
both; with device ``cpu`` it trains on ``/CPU:0`` alone.  Writes, for each
run, the loss history, the checkpoint's plan and the final weights' largest
difference from the one-device run of the same network.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _tf_fixtures import quiet_tensorflow, synthetic_imageset, tiny_keras_model, tiny_loss, tiny_spec  # noqa: E402


def _configure_two_cpus():
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def _train(workdir: Path, device: str, *, batch_norm: bool, loss: str, epochs: int):
    from facebench_plugins.engines._tf_trainer import read_checkpoint
    from facebench_plugins.engines.options import TFEngineOptions
    from facebench_plugins.engines.tf_engine import TFEngine
    from harness.config import TrainSettings

    engine = TFEngine(TFEngineOptions(threads=1, saved_model=False))
    engine.seed_everything(3)
    model = tiny_keras_model(dropout=0.0, batch_norm=batch_norm)
    settings = TrainSettings(epochs=epochs, batch_size=8, lr=0.05, warmup_steps=0, checkpoint_every=100,
                             device=device, grad_clip=5.0)
    out = engine.train(model, tiny_loss(loss, classes=8), synthetic_imageset(n=32, classes=8), settings=settings,
                       backbone_spec=tiny_spec(), workdir=workdir, seed=3, resume=False, progress=False)
    plan = read_checkpoint(out.checkpoint)["meta"]["plan"]
    return out, plan


def main() -> None:
    quiet_tensorflow()
    out_path, work = Path(sys.argv[1]), Path(sys.argv[2])
    result: dict = {"logical_cpus": _configure_two_cpus()}
    for tag, bn, loss, epochs in (("plain", False, "softmax", 2), ("batchnorm", True, "center", 4)):
        single, single_plan = _train(work / f"{tag}-one", "cpu", batch_norm=bn, loss=loss, epochs=epochs)
        mirrored, mirrored_plan = _train(work / f"{tag}-two", "auto", batch_norm=bn, loss=loss, epochs=epochs)
        diff = max(float(np.max(np.abs(a.numpy() - b.numpy())))
                   for a, b in zip(single.model.weights, mirrored.model.weights, strict=True))
        loss_diff = max(float(np.max(np.abs(a.numpy() - b.numpy())))
                        for a, b in zip(single.loss_fn.variables, mirrored.loss_fn.variables, strict=True))
        result[tag] = {"single_loss": single.history["loss"], "mirrored_loss": mirrored.history["loss"],
                       "single_plan": single_plan, "mirrored_plan": mirrored_plan,
                       "max_weight_diff": diff, "max_loss_variable_diff": loss_diff,
                       "mirrored_accuracy": mirrored.history["accuracy"]}
    out_path.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
