"""Evaluation as a pipeline: decode → detect → align in worker processes, embedding batched.

:func:`run_faces` is what :func:`harness.tasks._faces.face_crops` runs.  The
images are cut into chunks of :data:`CHUNK` consecutive images; each chunk is
decoded, its missing detections found, one face chosen per image and aligned
— in a pool of ``workers`` processes, or in this process when ``workers`` is
0.  Results come back in order, with a bounded number of chunks in flight
(:data:`PREFETCH` per worker), so the workers run ahead of the consumer:

* **embedding on the main process**: crops are embedded in batches of
  ``batch`` (the same batch boundaries as the serial path) while the workers
  prepare the next chunks — the stages overlap;
* **embedding in the workers**: a recognizer that runs on the CPU and can be
  rebuilt from its spec is built once in each worker, which embeds its own
  chunk.  On a CPU-only machine this is where the cores are (dlib's ResNet
  holds the GIL and uses one core).

Every worker runs one thread (``OMP_NUM_THREADS=1`` … at start, OpenCV and
torch pinned after their first use, a component's own ``threads`` option set
to 1 unless given); components are built *inside* the workers from their
specs (spawned processes, so no dlib / OpenCV object is ever copied).  A
worker that dies ends the run with a one-line error.  A :class:`~harness.errors.HarnessError` in a worker (an
unreadable image is a :class:`~harness.errors.DataError`) comes back as the
same error with the same one-line message.

Detections are read from and written to the same per-image store as the
serial path (:func:`harness.tasks._faces.face_store`), so a cache made by one
path is used by the other.  Seconds per stage (summed over the processes
that ran it), wall time and images per second are returned for
``results.json`` (:func:`stage_section`).
"""

from __future__ import annotations

import os
import pickle
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from harness.errors import ConfigError, HarnessError

if TYPE_CHECKING:
    from harness.registry import Registry
    from harness.tasks._faces import FaceCrops
    from harness.types import ImageSet

__all__ = ["AUTO_MIN_IMAGES", "CHUNK", "PREFETCH", "STAGES", "Job", "Recipe", "embed_where", "landmarker_of",
           "note_stage", "pipeline_options", "resolve_workers", "run_faces", "stage_section", "usable_cores"]

#: the stages timed, in pipeline order
STAGES = ("decode", "detect", "align", "embed", "score")
#: images per task sent to a worker
CHUNK = 8
#: chunks in flight per worker (how far the workers may run ahead of the consumer)
PREFETCH = 4
#: the automatic worker count stays in-process below this many images (a worker takes seconds to start)
AUTO_MIN_IMAGES = 256
#: an image loader larger than this (images held in memory) is not copied to every worker
MAX_JOB_BYTES = 64 * 2**20
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(requested: int | None, n_images: int, *, share: int | None = None) -> int:
    """Worker processes for ``n_images``: ``requested`` as given (0: in this process), or,
    when None, the usable cores divided among ``share`` processes (default: torchrun's
    ``LOCAL_WORLD_SIZE``, the ranks of this node) — in this process for small sets and
    when that leaves a single core."""
    if requested is not None:
        if int(requested) != requested or requested < 0:
            raise ConfigError(f"workers={requested!r}: expected 0 (in-process) or a number of worker processes")
        return int(requested)
    if n_images < AUTO_MIN_IMAGES:
        return 0
    if share is None:
        share = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    n = usable_cores() // max(1, int(share))
    return n if n >= 2 else 0


def embed_where(workers: int, model: Any, recipe: "Recipe | None", device: str = "auto") -> str:
    """Where the pipeline embeds: ``"workers"`` when there are workers, the model can be
    rebuilt there from its spec and runs on the CPU (neither ``--device`` nor the built
    model's ``device`` attribute names an accelerator); otherwise ``"main"``."""
    on_device = str(getattr(model, "device", "cpu") or "cpu")
    accel = any(str(d).split(":")[0] not in ("cpu", "auto") for d in (device, on_device))
    return "workers" if workers > 0 and recipe is not None and not accel else "main"


@dataclass(frozen=True)
class Recipe:
    """How a worker builds its own copy of a component: its spec and options (picklable)."""

    kind: str
    name: str
    spec: Any
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, registry: "Registry", kind: str, name: str, options: Mapping[str, Any] | None = None,
           ) -> "Recipe | None":
        """The recipe of ``kind`` ``name``, or None when its spec cannot travel to a process."""
        import copy

        spec = copy.copy(registry.get(kind, name))  # its metadata as a plain dict: a read-only proxy does not pickle
        object.__setattr__(spec, "meta", dict(spec.meta))
        options = dict(options or {})
        if "threads" in spec.option_fields() and not options.get("threads"):
            options["threads"] = 1  # a component's own thread pool (0: the library's default) gets one thread
        recipe = cls(kind, name, spec, options)
        return recipe if _picklable(recipe) else None

    def build(self) -> Any:
        """What ``Registry.build(kind, name, options)`` gives, built here."""
        from harness.registry import Registry
        from harness.specs import resolve_factory

        Registry.require_available(self.spec)
        return resolve_factory(self.spec)(self.spec.make_options(dict(self.options)))


@dataclass(frozen=True)
class Job:
    """What every chunk of one pipeline does (sent once to each worker).

    :param loader: ``loader(key) -> RGB uint8 image`` of the image set.
    :param template: the alignment template of the crops.
    :param size: (H, W) of the crops.
    :param aligned: the images are aligned crops already: decode and resize only.
    :param policy: which face of several is kept (:func:`harness.align.choose_face`).
    :param own_alignment: the model cuts the crops itself (``align_faces``).
    :param embed: the model embeds each chunk's crops (embedding in the workers).
    :param landmarker_scheme: with ``--landmarker``, the point scheme of the landmarker that
        places the five alignment points in each newly detected box (None: the detector's).
    """

    loader: Callable[[str], np.ndarray]
    template: str
    size: tuple[int, int]
    aligned: bool = False
    policy: str = "center"
    own_alignment: bool = False
    embed: bool = False
    landmarker_scheme: str | None = None


@dataclass
class Chunk:
    """One chunk's output, in the order of its items."""

    start: int
    crops: list = field(default_factory=list)
    fallback: list = field(default_factory=list)
    #: the detection-store row of each image: (box, landmarks, found, faces); None for aligned data
    rows: list = field(default_factory=list)
    #: positions (within the chunk) whose row was detected now rather than read from the store
    detected: list = field(default_factory=list)
    embeddings: np.ndarray | None = None
    seconds: dict = field(default_factory=lambda: dict.fromkeys(STAGES[:4], 0.0))
    #: (error class name, message) of a HarnessError raised while working on the chunk
    error: tuple[str, str] | None = None


class Parts:
    """The components a process works with, built on first use.

    :param detector: makes the detector (``Registry.build`` here, a :class:`Recipe` in a worker).
    :param model: makes the recognizer that aligns or embeds, or None.
    :param pin_threads: a worker: one thread for OpenCV and torch once a component is built.
    :param landmarker: makes the ``--landmarker`` that places the alignment points, or None.
    """

    def __init__(self, detector: Callable[[], Any] | None, model: Callable[[], Any] | None,
                 pin_threads: bool = False, landmarker: Callable[[], Any] | None = None) -> None:
        self._make = {"detector": detector, "model": model, "landmarker": landmarker}
        self._built: dict[str, Any] = {}
        self.pin_threads = pin_threads
        #: seconds spent building components, not yet reported
        self.setup_s = 0.0

    def get(self, what: str) -> Any:
        if what not in self._built:
            make = self._make[what]
            if make is None:
                raise HarnessError(f"the pipeline needs a {what} but none was given")
            t0 = time.perf_counter()
            self._built[what] = make()
            if self.pin_threads:
                _pin_threads()
            self.setup_s += time.perf_counter() - t0
        return self._built[what]


def _pickled_size(obj: Any) -> int | None:
    """Bytes ``obj`` takes to send to a process, or None when it cannot travel."""
    try:
        return len(pickle.dumps(obj))
    except Exception:  # any reason it cannot travel: lambdas, open handles, local classes
        return None


def _picklable(obj: Any) -> bool:
    return _pickled_size(obj) is not None


def _pin_threads() -> None:
    """One thread in this worker for the libraries that keep their own pools."""
    import sys

    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def process_chunk(job: Job, parts: Parts, start: int, items: Sequence[tuple[str, Any]]) -> Chunk:
    """Decode, detect (where the store has no row), align and optionally embed ``items``
    (``(key, stored row or None)`` each); the per-image work of the serial path exactly."""
    from harness.tasks._faces import crop_one, detect_one, refine_one, resize_crop

    out = Chunk(start)
    sec = out.seconds
    aligner = parts.get("model") if job.own_alignment and not job.aligned else None
    model = parts.get("model") if job.embed else None
    if not job.aligned and any(row is None for _k, row in items):
        parts.get("detector")
        if job.landmarker_scheme:
            parts.get("landmarker")
    sec["setup"], parts.setup_s = parts.setup_s, 0.0
    for pos, (key, row) in enumerate(items):
        t0 = time.perf_counter()
        img = job.loader(key)
        t1 = time.perf_counter()
        sec["decode"] += t1 - t0
        if job.aligned:
            out.crops.append(resize_crop(img, job.size))
            out.fallback.append(False)
            out.rows.append(None)
            sec["align"] += time.perf_counter() - t1
            continue
        if row is None:
            row = detect_one(parts.get("detector"), img, job.policy)
            if job.landmarker_scheme:  # the detector's box, the landmarker's points (timed as detect)
                row = refine_one(parts.get("landmarker"), img, row, job.landmarker_scheme)
            out.detected.append(pos)
        t2 = time.perf_counter()
        sec["detect"] += t2 - t1
        crop, flag = crop_one(img, row[0], row[1], bool(row[2]), template=job.template, size=job.size,
                              aligner=aligner)
        out.crops.append(crop)
        out.fallback.append(flag)
        out.rows.append(row)
        sec["align"] += time.perf_counter() - t2
    if job.embed and out.crops:
        t0 = time.perf_counter()
        out.embeddings = np.asarray(model.embed(out.crops), dtype=np.float32)
        sec["embed"] += time.perf_counter() - t0
    return out


# ------------------------------------------------------------------ worker side
_WORKER: dict[str, Any] = {}


def _worker_init(job: Job, detector: Recipe | None, model: Recipe | None,
                 landmarker: Recipe | None = None) -> None:
    """Pool initializer: remember the job; components are built by the first chunk that needs
    them, so a failure to build comes back as that chunk's error instead of killing the worker."""
    _WORKER["job"] = job
    _WORKER["parts"] = Parts(detector.build if detector else None, model.build if model else None,
                             pin_threads=True, landmarker=landmarker.build if landmarker else None)


def _worker_chunk(start: int, items: Sequence[tuple[str, Any]]) -> Chunk:
    try:
        return process_chunk(_WORKER["job"], _WORKER["parts"], start, items)
    except HarnessError as exc:  # the serial path's one-line error, carried back as data
        return Chunk(start, error=(type(exc).__name__, str(exc)))


def _raise(error: tuple[str, str]) -> None:
    from harness import errors

    cls = getattr(errors, error[0], None)
    if not (isinstance(cls, type) and issubclass(cls, HarnessError)):
        cls = HarnessError
    raise cls(error[1])


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Processes started inside inherit one-thread settings for OpenMP / BLAS pools."""
    old = {v: os.environ.get(v) for v in _THREAD_VARS}
    os.environ.update({v: "1" for v in _THREAD_VARS})
    try:
        yield
    finally:
        for v, value in old.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def _chunks(items: Sequence[tuple[str, Any]]) -> list[tuple[int, Sequence[tuple[str, Any]]]]:
    return [(s, items[s:s + CHUNK]) for s in range(0, len(items), CHUNK)]


def _in_process(job: Job, parts: Parts, items: Sequence[tuple[str, Any]]) -> Iterator[Chunk]:
    for start, part in _chunks(items):
        yield process_chunk(job, parts, start, part)


def _in_pool(job: Job, detector: Recipe | None, model: Recipe | None, items: Sequence[tuple[str, Any]],
             workers: int, landmarker: Recipe | None = None) -> Iterator[Chunk]:
    """Chunks from a pool of spawned workers, in order, at most ``PREFETCH * workers`` in flight.

    The one-thread environment holds while the pool lives (workers start on demand).  A
    worker that dies (a crash in native code) ends the run with a one-line error instead
    of a wait for a chunk that will never come."""
    import multiprocessing as mp
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with _single_threaded_children():
        pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_worker_init,
                                   initargs=(job, detector, model, landmarker))
        finished = False
        try:
            todo = deque(_chunks(items))
            flying: deque = deque()
            while todo or flying:
                while todo and len(flying) < PREFETCH * workers:
                    flying.append(pool.submit(_worker_chunk, *todo.popleft()))
                try:
                    chunk = flying.popleft().result()
                except BrokenProcessPool:
                    raise HarnessError(f"a worker process of the evaluation pipeline died ({workers} workers); "
                                       "rerun with --workers 0 to see the failure in the run's own process") from None
                yield chunk
            finished = True
        finally:
            pool.shutdown(wait=finished, cancel_futures=True)


# ------------------------------------------------------------------ main side
@dataclass
class _Plan:
    workers: int
    embed_on: str | None  # "main", "workers" or None (no embedding)
    why_serial: str = ""


def _plan(job: Job, workers: int, detector: Recipe | None, model: Recipe | None, needs_detector: bool,
          embed: bool, where: str, landmarker: Recipe | None = None) -> _Plan:
    """In-process when a piece cannot travel to a worker (and say which)."""
    why = ""
    if workers > 0:
        size = _pickled_size(job)
        if size is None:
            why = "the image loader cannot be sent to worker processes"
        elif size > MAX_JOB_BYTES:
            why = f"the image loader holds {size / 2**20:.0f} MiB, copied to every worker process"
        elif needs_detector and detector is None:
            why = "the detector's spec cannot be sent to worker processes"
        elif job.own_alignment and model is None:
            why = "the recognizer that aligns itself cannot be rebuilt in worker processes"
        elif needs_detector and job.landmarker_scheme and landmarker is None:
            why = "the landmarker's spec cannot be sent to worker processes"
    n = 0 if why else workers
    return _Plan(n, (where if n else "main") if embed else None, why)


def run_faces(images: "ImageSet", indices: np.ndarray, *, registry: "Registry", detector: str | None,
              detector_options: dict[str, Any] | None, template: str, size: tuple[int, int],
              recognizer: Any = None, recognizer_recipe: Recipe | None = None, embed: bool = False,
              batch: int = 64, device: str = "auto", cache_dir: Path | None = None, workers: int | None = 0,
              progress: bool = True, desc: str = "faces", policy: str = "center",
              collective: Any = None, landmarker: str | None = None,
              landmarker_options: dict[str, Any] | None = None) -> "FaceCrops":
    """The crops (and, with ``embed``, the embeddings by ``recognizer``) of ``images[indices]``.

    See the module docs; :func:`harness.tasks._faces.face_crops` documents the crops.
    ``workers`` None chooses (:func:`resolve_workers`), 0 works in this process.  With a
    ``collective`` of several ranks (torchrun), rank *r* works on every ``world``-th image
    from *r* and the parts are all-gathered in order (:func:`_sharded`).  With a
    ``landmarker`` it places the five alignment points in each detected box, in this process
    and in the workers alike (:func:`_landmarker_plan`).
    """
    from harness.tasks._faces import FaceCrops, _read_store, _write_store, face_store
    from harness.types import own_alignment

    t_start = time.perf_counter()
    aligned = images.aligned is not None
    if not aligned and detector is None:
        raise HarnessError("raw photos need a detector; none was chosen")
    detector_options = dict(detector_options or {})
    keys = [str(images.keys[int(i)]) for i in indices]
    own = None if aligned else own_alignment(recognizer)
    lmk = _landmarker_plan(registry, None if aligned else landmarker, landmarker_options, own)
    store = None if aligned else face_store(images, keys, detector, detector_options, policy, cache_dir,
                                            lmk.name, dict(lmk.options))
    cached = _read_store(store) if collective is None or collective.main else {}
    items = [(k, cached.get(k)) for k in keys]
    world = 1 if collective is None else int(collective.world)
    if world > 1:  # every rank works from rank 0's store
        items = collective.broadcast(items if collective.main else None)
    job = Job(images.loader, template, tuple(size), aligned, policy, own is not None, False, lmk.scheme)

    def work(part: list) -> dict[str, Any]:
        needs_detector = not aligned and any(row is None for _k, row in part)
        det_recipe = Recipe.of(registry, "detector", detector, detector_options) if needs_detector else None
        n = resolve_workers(workers, len(part) * world)
        lm_recipe = lmk.recipe(registry) if needs_detector and lmk.name else None
        plan = _plan(job, n, det_recipe, recognizer_recipe, needs_detector, embed,
                     embed_where(n, recognizer, recognizer_recipe, device), lm_recipe)
        run = Job(images.loader, template, tuple(size), aligned, policy, own is not None, plan.embed_on == "workers",
                  lmk.scheme)
        if plan.workers:
            chunks = _in_pool(run, det_recipe, recognizer_recipe if (run.own_alignment or run.embed) else None,
                              part, plan.workers, lm_recipe)
        else:
            parts = Parts(lambda: registry.build("detector", detector, detector_options), lambda: recognizer,
                          landmarker=lambda: registry.build("landmarker", lmk.name, dict(lmk.options)))
            chunks = _in_process(run, parts, part)
        out = _collect(chunks, len(part), recognizer if plan.embed_on == "main" else None, batch,
                       progress=progress, desc=desc)
        return {**out, "workers": plan.workers, "embed_on": plan.embed_on, "why": plan.why_serial}

    out = work(items) if world == 1 else _sharded(work, items, collective)
    if out["detected"] and store is not None and (collective is None or collective.main):
        for j in out["detected"]:
            cached[keys[j]] = out["rows"][j]
        _write_store(store, cached)
    wall = time.perf_counter() - t_start
    stages = {"workers": out["workers"], "embed_on": out["embed_on"], "images": len(keys),
              "detected": len(out["detected"]), "from_store": 0 if aligned else len(keys) - len(out["detected"]),
              "seconds": {k: round(v, 3) for k, v in out["seconds"].items()}, "wall_s": round(wall, 3),
              "img_per_s": round(len(keys) / wall, 2) if wall > 0 else None,
              "start_method": "spawn" if out["workers"] else "in-process"}
    if world > 1:
        stages["ranks"] = world
    if out["why"]:
        stages["why_in_process"] = out["why"]
    fallback = np.asarray(out["fallback"], bool).reshape(-1)
    if aligned:
        return FaceCrops(out["crops"], fallback, None, f"none (already aligned: {images.aligned})",
                         embeddings=out["embeddings"], stages=stages)
    faces = np.asarray([int(r[3]) for r in out["rows"]], np.int64)
    return FaceCrops(out["crops"], fallback, detector, own or lmk.describe(template), faces,
                     embeddings=out["embeddings"], stages=stages, landmarker=lmk.use(detector, out["rows"]))


@dataclass(frozen=True)
class _Landmarks:
    """Who places the five alignment points: the detector (``name`` None) or a ``--landmarker``."""

    name: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    scheme: str | None = None
    rule: str = ""

    def recipe(self, registry: "Registry") -> Recipe | None:
        return Recipe.of(registry, "landmarker", self.name, dict(self.options)) if self.name else None

    def use(self, detector: str, rows: Sequence[Any]) -> Any:
        """How the landmarker placed the points of ``rows`` and where it placed none
        (:func:`harness.tasks._landmark_points.landmarker_use`); None without a landmarker."""
        from harness.tasks._landmark_points import landmarker_use

        return landmarker_use(self.name, self.scheme or "", detector, rows) if self.name else None

    def describe(self, template: str) -> str:
        """The alignment as the protocol states it."""
        if not self.name:
            return template
        return f"{template}; five points by landmarker {self.name} in the detector's box ({self.rule})"


def _landmarker_plan(registry: "Registry", name: str | None, options: Mapping[str, Any] | None,
                     own: str | None) -> _Landmarks:
    """The landmarker that places the alignment points (``--landmarker``), checked: its scheme can give
    the five points, and the model does not cut its own crops from the box."""
    from harness.tasks._landmark_points import check_scheme, five_rule

    if not name:
        return _Landmarks()
    if own is not None:
        raise ConfigError(f"--landmarker {name} places alignment points, but the recognizer aligns its crops itself "
                          f"({own}); drop --landmarker or use a recognizer or backbone aligned to a template")
    spec = registry.get("landmarker", name)
    check_scheme(spec.scheme, name)
    return _Landmarks(name, dict(options or {}), spec.scheme, five_rule(spec.scheme))


def _sharded(work: Callable[[list], dict[str, Any]], items: list, collective: Any) -> dict[str, Any]:
    """``work`` on this rank's share of ``items`` (every ``world``-th from ``rank``), all-gathered
    and put back in order on every rank — so every rank goes on with the same crops, flags and
    embeddings, and rank 0 writes them.  An error on any rank is raised on every rank (the
    ranks stay in step); the stage seconds are summed over the ranks."""
    rank, world = int(collective.rank), int(collective.world)
    try:
        mine: dict[str, Any] = work(items[rank::world])
        mine["error"] = None
    except HarnessError as exc:
        mine = {"error": (type(exc).__name__, str(exc))}
    parts = collective.gather(mine)
    for part in parts:
        if part["error"] is not None:
            _raise(part["error"])
    n = len(items)
    out: dict[str, Any] = {"crops": [None] * n, "fallback": [False] * n, "rows": [None] * n, "detected": [],
                           "seconds": {}, "workers": parts[0]["workers"], "embed_on": parts[0]["embed_on"],
                           "why": parts[0]["why"]}
    embs = None
    for r, part in enumerate(parts):
        where = list(range(r, n, world))
        for pos, crop, flag, row in zip(where, part["crops"], part["fallback"], part["rows"]):
            out["crops"][pos], out["fallback"][pos], out["rows"][pos] = crop, flag, row
        out["detected"] += [where[j] for j in part["detected"]]
        for k, v in part["seconds"].items():
            out["seconds"][k] = out["seconds"].get(k, 0.0) + v
        if part["embeddings"] is not None:
            if embs is None:
                embs = np.zeros((n, part["embeddings"].shape[1]), np.float32)
            embs[where] = part["embeddings"]
    out["detected"].sort()
    out["embeddings"] = embs
    return out


def _collect(chunks: Iterator[Chunk], total: int, main_model: Any, batch: int, *, progress: bool,
             desc: str) -> dict[str, Any]:
    """Consume the chunks in order; embed on this process in batches of ``batch`` when
    ``main_model`` is given (the serial path's batch boundaries, so the same numbers)."""
    from harness.tasks._faces import progress_iter

    crops: list = []
    fallback: list = []
    rows: list = []
    detected: list[int] = []
    embs: list[np.ndarray] = []
    seconds = dict.fromkeys((*STAGES[:4], "setup"), 0.0)
    done = 0
    bar = progress_iter(range(total), desc, progress) if progress else None
    try:
        for chunk in chunks:
            if chunk.error is not None:
                _raise(chunk.error)
            crops += chunk.crops
            fallback += chunk.fallback
            rows += chunk.rows
            detected += [chunk.start + p for p in chunk.detected]
            for k, v in chunk.seconds.items():
                seconds[k] += v
            if chunk.embeddings is not None:
                embs.append(chunk.embeddings)
            while main_model is not None and len(crops) - done >= batch:
                done = _embed_batch(main_model, crops, done, batch, embs, seconds)
            if bar is not None and hasattr(bar, "update"):
                bar.update(len(chunk.crops))
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()  # a pool is shut down now, not whenever the generator is collected
    while main_model is not None and done < len(crops):
        done = _embed_batch(main_model, crops, done, batch, embs, seconds)
    if bar is not None and hasattr(bar, "close"):
        bar.close()
    embeddings = np.concatenate(embs).astype(np.float32, copy=False) if embs else None
    return {"crops": crops, "fallback": fallback, "rows": rows, "detected": detected, "embeddings": embeddings,
            "seconds": seconds}


def _embed_batch(model: Any, crops: list, done: int, batch: int, embs: list, seconds: dict) -> int:
    t0 = time.perf_counter()
    part = crops[done:done + batch]
    embs.append(np.asarray(model.embed(list(part)), dtype=np.float32))
    seconds["embed"] += time.perf_counter() - t0
    return done + len(part)


def stage_section(stages: Sequence[Mapping[str, Any] | None], *, embed_s: float | None = None,
                  score_s: float | None = None) -> dict[str, Any] | None:
    """``sections.pipeline`` of ``results.json``: the stages of every evaluated set together.

    Stage seconds are summed over the processes that ran them (with workers they
    exceed the wall time: that is the overlap); ``embed_s`` / ``score_s`` add time
    measured outside the pipeline (an engine embedding after training, scoring).
    """
    got = [s for s in stages if s]
    if not got:
        return None
    seconds = dict.fromkeys(STAGES, 0.0)
    for s in got:
        for k, v in s.get("seconds", {}).items():
            seconds[k] = seconds.get(k, 0.0) + float(v)
    if embed_s is not None:
        seconds["embed"] += embed_s
    if score_s is not None:
        seconds["score"] += score_s
    images = sum(int(s.get("images", 0)) for s in got)
    wall = sum(float(s.get("wall_s", 0.0)) for s in got) + (embed_s or 0.0) + (score_s or 0.0)
    out = {
        "workers": max(int(s.get("workers", 0)) for s in got),
        "embed_on": next((s.get("embed_on") for s in got if s.get("embed_on")), None),
        "images": images,
        "detected": sum(int(s.get("detected", 0)) for s in got),
        "from_store": sum(int(s.get("from_store", 0)) for s in got),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "wall_s": round(wall, 3),
        "img_per_s": round(images / wall, 2) if wall > 0 else None,
        "rule": "stage seconds are summed over the processes that ran them; wall_s is elapsed time "
                "(decode → detect → align → embed, then scoring)",
    }
    ranks = max(int(s.get("ranks", 1)) for s in got)
    if ranks > 1:  # torchrun: each rank ran the pipeline on its share (seconds summed over the ranks)
        out["ranks"] = ranks
    why = [s["why_in_process"] for s in got if s.get("why_in_process")]
    if why:
        out["why_in_process"] = why[0]
    return out


def pipeline_options(ctx: Any, spec: Any, recognizer: Any = None, model_spec: Any = None) -> dict[str, Any]:
    """The keyword arguments of :func:`harness.tasks._faces.face_crops` that set up the pipeline of
    a run: its workers (``--workers``) and the ranks it is sharded over (both kept in
    ``ctx.extra`` by the run lifecycle), the device, and the recipe a worker rebuilds the
    recognizer from."""
    recipe = None
    if recognizer is not None and model_spec is not None and getattr(model_spec, "kind", None) == "recognizer":
        recipe = Recipe.of(ctx.registry, "recognizer", model_spec.name, spec.options.get(model_spec.name))
    return {"workers": ctx.extra.get("workers", 0), "recognizer_recipe": recipe, "device": spec.training.device,
            "collective": ctx.extra.get("collective"), **landmarker_of(spec)}


def landmarker_of(spec: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`harness.tasks._faces.face_crops` that name a run's ``--landmarker``
    (the detector finds the box, the landmarker places the alignment points); none: the detector's."""
    name = spec.components.get("landmarker")
    return {"landmarker": name, "landmarker_options": dict(spec.options.get(name) or {}) if name else None}


def note_stage(stages: Sequence[dict | None], stage: str, seconds: float) -> None:
    """Add ``seconds`` of ``stage`` measured outside the pipeline (an engine embedding the
    crops after training) to the first set's stages, wall time and rate."""
    for s in stages:
        if s:
            s["seconds"][stage] = round(s["seconds"].get(stage, 0.0) + seconds, 3)
            s["wall_s"] = round(s["wall_s"] + seconds, 3)
            s["img_per_s"] = round(s["images"] / s["wall_s"], 2) if s["wall_s"] > 0 else None
            return
