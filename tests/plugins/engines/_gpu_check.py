"""Temporary GPU smoke check (not a test; removed after the device run)."""
import sys, tempfile, time
import numpy as np, torch
from harness.registry import get_registry
from harness.config import TrainSettings
from harness.types import ImageSet

reg = get_registry()
print(torch.__version__, torch.cuda.get_device_name(0), flush=True)
rng = np.random.default_rng(0)
imgs = [rng.integers(0, 255, (112, 112, 3), dtype=np.uint8) for _ in range(2048)]
ds = ImageSet(keys=[str(i) for i in range(2048)], labels=np.arange(2048) % 64, loader=lambda k: imgs[int(k)])
spec = reg.get("backbone", "mobilefacenet")
for bb in ("mobilefacenet",):
    spec = reg.get("backbone", bb)
    for amp, cl in ((False, False), (True, False), (False, True), (True, True)):
        eng = reg.build("engine", "torch", {"amp": str(amp), "channels_last": str(cl)})
        eng.seed_everything(0)
        m = reg.build("backbone", bb)
        l = reg.build("loss", "arcface", {}, embedding_size=spec.embedding_size, num_classes=64)
        with tempfile.TemporaryDirectory() as d:
            out = eng.train(m, l, ds, backbone_spec=spec,
                            settings=TrainSettings(epochs=2, batch_size=128, lr=0.1, workers=8,
                                                   warmup_steps=4, checkpoint_every=10),
                            workdir=d, seed=0, progress=False)
            ck = torch.load(out.checkpoint, weights_only=True, map_location="cpu")
        ips = float(np.median(out.history["img_per_s"][4:]))
        print(f"{bb} amp={amp} cl={cl} device={out.device} steps={out.steps} loss={[round(x, 2) for x in out.history['loss'][::8]]} "
              f"median img/s={ips:.0f} wall={out.wall_s:.1f}s ckpt_step={ck['step']}", flush=True)
        t = time.time()
        f = eng.embed(out.model, ds, backbone_spec=spec, flip="concat", batch_size=256)
        print(f"  embed {f.shape} finite={np.isfinite(f).all()} {len(ds) / (time.time() - t):.0f} img/s", flush=True)
