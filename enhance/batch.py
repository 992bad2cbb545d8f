"""Files and folders in, a folder out: layout kept, a manifest that makes runs resumable, decoding
and encoding overlapped with tuning, and sharding across torch.distributed ranks.

Layout: a file named directly goes to ``OUTDIR/<name>``; the images found (recursively) in a
folder keep their path relative to that folder. Each output gets the sidecar ``enhance tune``
writes (``<output>.json``) and then one line in the manifest, ``OUTDIR/manifest.jsonl`` (one
``manifest.rank<R>.jsonl`` per rank when distributed): input path, status (done, failed, skipped,
or writing: the line before an output is written), error, the whole-photo mean scores before and
after (as ``enhance score``), parameters, seconds, and the hashes that decide resuming. An input in a format that cannot be
written (Radiance ``.hdr``/``.pic``, OpenEXR) gets a 16-bit PNG output (``scene.hdr`` -> ``scene.png``).

Ownership: the files under OUTDIR that a manifest line names (written or about to be) are the
run's own, replaced when needed; any other existing file is the user's, and its photo fails
unless ``force``. The manifest, ``fitted.toml`` and every output are checked by
:mod:`enhance.outputs` before any photo is read: nothing is written through a symlink that
leaves OUTDIR, and no input is ever an output.

Resuming: a photo is finished, and ``skipped``, when a ``done`` line of any manifest part has the
same input sha256, recipe sha256 (the recipe's TOML text, steps, seed, strength and mode) and
weights sha256, and its output still has the recorded sha256. Images and sidecars are written
atomically between a ``writing`` line and their ``done`` line, each flushed and fsynced: a kill
loses at most the photos in flight; their temp files are removed at the next start and a torn last
line is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections import deque
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import torch

from enhance.files import file_sha256, photo_source, sidecar_path
from enhance.io import WRITE_EXTENSIONS, ImageError, Photo, atomic_path, read, write, write_json
from enhance.outputs import Inputs, OutputError, check_writes, inside, opens_with
from enhance.rank import find_images
from enhance.recipe import Recipe, as_recipe, load_recipe
from enhance.result import TuneResult, sidecar_record
from enhance.render import check_hdr
from enhance.tune import SharedFit, apply_values, fit_shared, tune_sources
from nima import Scorer

if TYPE_CHECKING:
    from enhance.predict import Predictor

MANIFEST = "manifest.jsonl"
FITTED = "fitted.toml"
GPU_GROUP = 8  # photos tuned together on a GPU (one scorer batch of 3 views each)
_STALE = re.compile(r"\.(.+)\.[0-9a-f]{8}\.tmp")  # what io.atomic_path leaves behind when killed

Tuner = Callable[[list[Photo]], list[tuple[torch.Tensor, TuneResult]]]


class BatchError(ValueError):
    """A batch that cannot run as asked (output folder inside an input folder, clashing names, a
    manifest or fitted recipe it may not write)."""


@dataclass(frozen=True)
class Job:
    """One input file and its output path relative to the output folder (POSIX separators)."""

    src: Path
    rel: str


# --- planning -------------------------------------------------------------------------------------


def plan(inputs: Iterable[str | Path], outdir: str | Path) -> tuple[list[Job], list[Path]]:
    """Jobs sorted by output path, and the inputs that do not exist. BatchError when the output
    folder is, or lies inside, an input folder, or when two inputs would share an output."""
    out = Path(outdir).resolve()
    jobs: dict[str, Job] = {}
    missing: list[Path] = []
    for entry in map(Path, inputs):
        files, gone = find_images([entry])
        missing += gone
        if entry.is_dir():
            if inside(out, entry.resolve()):
                raise BatchError(f"{outdir}: the output folder lies inside the input folder {entry}")
            pairs = [(f, _writable(f.relative_to(entry).as_posix())) for f in files]
        else:
            pairs = [(f, _writable(f.name)) for f in files]
        for src, rel in pairs:
            if rel in jobs:
                raise BatchError(f"{src} and {jobs[rel].src} would both be written to {rel}")
            jobs[rel] = Job(src, rel)
    return [jobs[k] for k in sorted(jobs)], missing


def _writable(rel: str) -> str:
    """``rel``, with a PNG extension when its own format cannot be written (HDR, EXR)."""
    return rel if Path(rel).suffix.lower() in WRITE_EXTENSIONS else str(Path(rel).with_suffix(".png").as_posix())


def shard(jobs: Sequence[Job], rank: int, world: int) -> list[Job]:
    """This rank's share of the (sorted) jobs: every ``world``-th one from ``rank``."""
    return [j for i, j in enumerate(jobs) if i % world == rank]


def target(outdir: str | Path, rel: str) -> Path:
    """``outdir/rel`` with its folders created; BatchError when it would resolve outside
    ``outdir`` (``..`` in the name, a symlinked folder or file pointing elsewhere)."""
    root = Path(outdir).resolve()
    path = Path(outdir) / rel
    if not inside(path.resolve(), root):
        raise BatchError(f"{path}: the output would leave {outdir}; refused")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not inside(path.resolve(), root):  # a link created meanwhile
        raise BatchError(f"{path}: the output would leave {outdir}; refused")
    return path


def clean_stale(outdir: str | Path, planned: Iterable[Path]) -> list[Path]:
    """Remove the temp files a killed run left under ``outdir`` (``.<name>.<8 hex>.tmp``) for the
    files of ``planned`` (paths under ``outdir``); returns them. Symlinked folders are not followed."""
    names = {(p.parent, p.name) for p in planned}
    gone = []
    for p in Path(outdir).rglob(".*.tmp"):
        match = _STALE.fullmatch(p.name)
        if match and (p.parent, match.group(1)) in names and p.is_file() and not p.is_symlink():
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def recipe_sha256(recipe: Recipe, steps: int, seed: int, strength: float, mode: str) -> str:
    """What decides whether a finished output is still valid: the recipe's TOML text (operators,
    bounds, start values), steps, seed, strength and mode ("tune" or "shared")."""
    text = f"{recipe.to_toml()}\nsteps={steps}\nseed={seed}\nstrength={strength!r}\nmode={mode}\n"
    return hashlib.sha256(text.encode()).hexdigest()


# --- the manifest -------------------------------------------------------------------------------


def manifest_name(rank: int | None) -> str:
    """``manifest.jsonl``, or ``manifest.rank<R>.jsonl`` for one rank of a distributed run."""
    return MANIFEST if rank is None else f"manifest.rank{rank}.jsonl"


def read_manifest(outdir: str | Path) -> list[dict[str, Any]]:
    """Every record of every manifest part under ``outdir`` (regular files only); lines that are
    not JSON objects (a line torn by a kill) are ignored."""
    records = []
    for part in sorted(Path(outdir).glob("manifest*.jsonl")):
        if not part.is_file():  # a folder or FIFO of that name is no manifest (and would block)
            continue
        for line in part.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict):
                records.append(rec)
    return records


def is_manifest(path: str | Path) -> bool:
    """True when every line of ``path`` is a manifest record (a JSON object with a status and an
    output) or one torn by a kill: a file ``batch`` may append to."""
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            if line.startswith('{"path": "'):  # how every record starts: one torn by a kill
                continue
            return False
        if not (isinstance(rec, dict) and "status" in rec and "output" in rec):
            return False
    return True


def owned_outputs(outdir: str | Path) -> set[Path]:
    """The files under ``outdir`` that its manifest says a run wrote or was about to write: each
    recorded output and its sidecar."""
    rels = {str(r.get("output")) for r in read_manifest(outdir) if r.get("status") in ("writing", "done", "skipped")}
    return {p for rel in rels for p in (Path(outdir) / rel, sidecar_path(Path(outdir) / rel))}


class Manifest:
    """Appends records to one manifest part, one JSON line each, flushed and fsynced."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "ab+") as f:  # a torn last line: end it, so the next record starts clean
            f.seek(0, os.SEEK_END)
            if f.tell():
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


def finished(jobs: Sequence[Job], outdir: str | Path, recipe_sha: str, weights_sha: str | None) -> dict[str, dict]:
    """Output path -> its ``done`` record, for the jobs whose output is still valid (see the
    module's docstring)."""
    done: dict[str, list[dict]] = {}
    for rec in read_manifest(outdir):
        if (rec.get("status") == "done" and rec.get("recipe_sha256") == recipe_sha
                and rec.get("weights_sha256") == weights_sha):
            done.setdefault(rec.get("output", ""), []).append(rec)
    found = {}
    for job in jobs:
        if job.rel not in done:
            continue
        out = Path(outdir) / job.rel
        if not (out.is_file() and sidecar_path(out).is_file()):
            continue
        src_sha, out_sha = file_sha256(job.src), file_sha256(out)
        for rec in done[job.rel]:
            if rec.get("input_sha256") == src_sha and rec.get("output_sha256") == out_sha:
                found[job.rel] = rec
    return found


# --- the pipeline ---------------------------------------------------------------------------------


def tuner_for(recipe: Recipe, scorer: Scorer, *, steps: int | None, seed: int, strength: float | None,
              values: Sequence[dict[str, float]] | None = None, note: str = "shared parameters",
              predictor: Predictor | None = None) -> Tuner:
    """photos -> (output, TuneResult) each: the photos tuned together (one scorer call per step
    for all of them), from ``predictor``'s prediction when given, or with ``values`` (a shared
    fit) ``apply_values``; ``strength`` None: the recipe's pull for each photo's kind of input
    (:meth:`Recipe.pull`); ``steps`` None: the predictor's ``refine_steps`` after a prediction, else
    the recipe's. 8- and 16-bit photos are rendered through :mod:`enhance.lut`."""
    device = scorer.device

    def tune_photos(photos: list[Photo]) -> list[tuple[torch.Tensor, TuneResult]]:
        if values is not None:
            return [apply_values(p.image.to(device), recipe, values, scorer, linear=p.linear, seed=seed, note=note)
                    for p in photos]
        sources = [photo_source(p, device) for p in photos]
        if any(s.linear for s in sources):
            check_hdr(recipe)
        return tune_sources(sources, recipe, scorer, crops=2, seed=seed, steps=steps, strength=strength,
                            predictor=predictor)

    return tune_photos


def _reason(job: Job, exc: Exception) -> str:
    text = str(exc) if isinstance(exc, (ImageError, BatchError)) else f"{job.src}: {type(exc).__name__}: {exc}"
    return " ".join(text.split())


def run(
    jobs: Sequence[Job],
    outdir: str | Path,
    tuner: Tuner,
    manifest: Manifest,
    *,
    scorer: Scorer,
    recipe: Recipe,
    recipe_sha: str,
    workers: int = 1,
    group: int = 1,
) -> Iterator[dict[str, Any]]:
    """Process ``jobs`` and yield each one's manifest record, in order.

    Three stages overlap: one thread reads (and hashes) the next photos, ``workers`` threads tune
    ``group`` photos at a time with ``tuner``, one thread writes the outputs, sidecars and manifest
    lines. A photo that cannot be read, tuned or written gets a ``failed`` record; a group that
    fails is retried one photo at a time, so one bad photo never fails another.
    """
    stages = _Stages(Path(outdir), tuner, manifest, scorer, recipe, recipe_sha, workers)
    units = [list(jobs[i: i + group]) for i in range(0, len(jobs), group)]
    completed = False  # an interrupt (Ctrl-C) leaves at once, not waiting for the photos in flight
    try:
        pending: deque[Future] = deque()
        todo = iter(units)
        for _ in range(workers + 1):
            stages.submit(next(todo, None), pending)
        while pending:
            for done in pending.popleft().result():
                yield done.result()
            stages.submit(next(todo, None), pending)
        completed = True
    finally:
        stages.shutdown(completed)


class _Stages:
    """The three thread pools of :func:`run` and the work each stage does for one photo."""

    def __init__(self, outdir: Path, tuner: Tuner, manifest: Manifest, scorer: Scorer, recipe: Recipe,
                 recipe_sha: str, workers: int) -> None:
        self.outdir, self.tuner, self.manifest, self.scorer, self.recipe = outdir, tuner, manifest, scorer, recipe
        self.recipe_sha, self.weights_sha = recipe_sha, scorer.weights_sha256
        self.reader, self.tuners, self.writer = (ThreadPoolExecutor(1, "read"), ThreadPoolExecutor(workers, "tune"),
                                                 ThreadPoolExecutor(1, "write"))

    def submit(self, unit: list[Job] | None, pending: deque[Future]) -> None:
        """Queue ``unit`` (None: nothing left): its reads now, its tuning after them."""
        if unit is not None:
            pending.append(self.tuners.submit(self.tune_unit, unit, [self.reader.submit(self.load, j) for j in unit]))

    def shutdown(self, completed: bool) -> None:
        for pool in (self.reader, self.tuners, self.writer):
            pool.shutdown(wait=completed, cancel_futures=not completed)

    def load(self, job: Job) -> tuple[Photo, str, float]:
        t0 = time.perf_counter()
        target(self.outdir, job.rel)
        sha = file_sha256(job.src)
        return read(job.src), sha, time.perf_counter() - t0

    def fail(self, job: Job, reason: str) -> dict[str, Any]:
        record = _line(job, "failed", reason, self.recipe_sha, self.weights_sha)
        self.manifest.append(record)
        return record

    def save(self, job: Job, photo: Photo, sha: str, t_read: float, output: torch.Tensor, result: TuneResult) -> dict:
        try:
            path = target(self.outdir, job.rel)
            self.manifest.append(_line(job, "writing", None, self.recipe_sha, self.weights_sha))
            t0 = time.perf_counter()
            write(path, output.cpu(), like=photo)
            seconds = {"read": round(t_read, 3), **result.seconds, "write": round(time.perf_counter() - t0, 3)}
            write_json(sidecar_path(path), sidecar_record(job.src, sha, path, self.recipe, result, self.scorer, seconds))
            out_sha = file_sha256(path)
        except Exception as exc:  # noqa: BLE001 - one bad photo never stops the batch
            return self.fail(job, _reason(job, exc))
        record = {"path": str(job.src), "output": job.rel, "status": "done", "error": None,
                  "before": round(result.score["before"].mean, 5), "after": round(result.score["after"].mean, 5),
                  "kept_input": result.kept_input, "params": result.ops, "seconds": seconds,
                  "input_sha256": sha, "output_sha256": out_sha, "recipe_sha256": self.recipe_sha,
                  "weights_sha256": self.weights_sha}
        self.manifest.append(record)
        return record

    def tune_unit(self, unit: list[Job], reads: list[Future]) -> list[Future]:
        """Tune the photos of ``unit`` that were read, together; queue each one's write or failure."""
        out: dict[int, Future] = {}
        loaded = []
        for k, (job, fut) in enumerate(zip(unit, reads)):
            try:
                loaded.append((k, job, *fut.result()))
            except Exception as exc:  # noqa: BLE001
                out[k] = self.writer.submit(self.fail, job, _reason(job, exc))
        results = self.tuned([photo for _, _, photo, _, _ in loaded])
        for (k, job, photo, sha, t_read), res in zip(loaded, results):
            if isinstance(res, Exception):
                out[k] = self.writer.submit(self.fail, job, _reason(job, res))
            else:
                out[k] = self.writer.submit(self.save, job, photo, sha, t_read, *res)
        return [out[k] for k in sorted(out)]

    def tuned(self, photos: list[Photo]) -> list[Any]:
        """Each photo's (output, result), or the exception that stopped it: a group that fails is
        retried one photo at a time, so that the error lands on its photo."""
        try:
            return self.tuner(photos) if photos else []
        except Exception as exc:  # noqa: BLE001
            if len(photos) == 1:
                return [exc]
        out: list[Any] = []
        for photo in photos:
            try:
                out.append(self.tuner([photo])[0])
            except Exception as exc:  # noqa: BLE001
                out.append(exc)
        return out


def summary(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Counts of done, failed and skipped records, and over the done and skipped ones the number
    scored, the sums of their mean scores before and after, and how many got worse."""
    s = dict.fromkeys(("done", "failed", "skipped", "scored", "before", "after", "worse"), 0.0)
    for rec in records:
        s[rec["status"]] += 1
        if rec["status"] != "failed":
            s["scored"] += 1
            s["before"] += rec["before"]
            s["after"] += rec["after"]
            s["worse"] += rec["after"] < rec["before"]
    return s


# --- the shared fit's file -----------------------------------------------------------------------


def fit_key(recipe_sha: str, weights_sha: str | None, input_shas: Iterable[str], batch_size: int) -> str:
    """What decides whether ``fitted.toml`` can be reused: the run's recipe sha256, the weights,
    the inputs' contents and the mini-batch size."""
    text = "\n".join([recipe_sha, str(weights_sha), str(batch_size), *sorted(input_shas)])
    return hashlib.sha256(text.encode()).hexdigest()


def load_fit(outdir: str | Path, key: str) -> Recipe | None:
    """The recipe in ``outdir/fitted.toml`` when it was fitted under ``key``, else None."""
    path = Path(outdir) / FITTED
    if not path.is_file() or not path.read_text(encoding="utf-8").startswith(f"# fit {key}\n"):
        return None
    return load_recipe(path)


def save_fit(outdir: str | Path, fitted: Recipe, key: str, images: int) -> Path:
    """Write ``fitted.toml`` atomically: the fitted recipe, loadable with ``--recipe``."""
    path = Path(outdir) / FITTED
    with atomic_path(path) as tmp:
        tmp.write_text(f"# fit {key}\n# shared parameters fitted on {images} images by `enhance batch --shared`\n"
                       + fitted.to_toml(), encoding="utf-8")
    return path


def shared_fit(
    outdir: str | Path, planned: Sequence[Job], mine: Sequence[Job], recipe: Recipe, scorer: Scorer, *,
    steps: int, seed: int, batch_size: int = 8, distributed: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[Recipe, SharedFit | None]:
    """The recipe holding a run's shared fit, and the fit (None when reused): ``fitted.toml``
    when it was fitted on the same inputs (``planned``), recipe, settings and weights, else a new
    fit on the readable photos of this rank's ``mine``, saved by rank 0."""
    key = fit_key(recipe_sha256(recipe, steps, seed, recipe.strength, "fit"), scorer.weights_sha256,
                  [file_sha256(j.src) for j in planned], batch_size)
    reused = load_fit(outdir, key)
    if reused is not None:
        return reused, None

    def photos() -> Iterator[Photo]:
        for job in mine:
            try:
                yield read(job.src)
            except ImageError:
                continue  # it is recorded as failed when the fit is applied

    fit = fit_shared(photos(), recipe, scorer, steps=steps, batch_size=batch_size, seed=seed,
                     distributed=distributed, on_step=on_step)
    fitted = fit.recipe(recipe)
    if not distributed or torch.distributed.get_rank() == 0:
        save_fit(outdir, fitted, key, fit.images)
    return fitted, fit


# --- torch.distributed ---------------------------------------------------------------------------


@contextmanager
def process_group(device: str) -> Iterator[tuple[int, int, str]]:
    """Join the process group torchrun set up (gloo on the CPU, NCCL on GPUs) for the ``with``
    block: yields (rank, world size, this rank's device). On leaving, the ranks meet at a barrier
    (skipped when leaving on an error) and the group is destroyed, as PyTorch asks of every
    process before it exits."""
    import torch.distributed as dist

    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    dist.init_process_group("nccl" if cuda else "gloo")
    finished = False
    try:
        yield dist.get_rank(), dist.get_world_size(), device
        finished = True
    finally:
        if finished:
            dist.barrier()
        dist.destroy_process_group()


# --- the whole job ---------------------------------------------------------------------------------


@dataclass
class BatchReport:
    """What ``tune_folder`` did: the manifest records of the photos (of every rank when
    distributed), sorted by output path; the inputs that do not exist; and the shared fit (None
    unless one ran in this call)."""

    records: list[dict[str, Any]]
    missing: list[Path]
    fit: SharedFit | None

    @property
    def totals(self) -> dict[str, float]:
        """:func:`summary` of the records."""
        return summary(self.records)

    @property
    def ok(self) -> bool:
        """True when no photo failed and every input existed."""
        return not self.totals["failed"] and not self.missing

    def line(self) -> str:
        """One summary line: counts, and the mean score before and after over the scored photos."""
        t = self.totals
        text = f"batch: {t['done']:.0f} done, {t['failed']:.0f} failed, {t['skipped']:.0f} skipped"
        if t["scored"]:
            text += (f"; mean score {t['before'] / t['scored']:.3f} -> {t['after'] / t['scored']:.3f}, "
                     f"{t['worse']:.0f} worse")
        return text


def tune_folder(
    inputs: Sequence[str | Path],
    outdir: str | Path,
    recipe: Recipe | str | Sequence[str],
    scorer: Scorer,
    *,
    shared: bool = False,
    steps: int | None = None,
    seed: int = 0,
    jobs: int = 1,
    distributed: bool = False,
    on_plan: Callable[[int, int], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    on_fit_step: Callable[[int, float], None] | None = None,
    force: bool = False,
    report: str | Path | None = None,
    reads: Sequence[str | Path] = (),
    predictor: Predictor | None = None,
) -> BatchReport:
    """Tune every photo of ``inputs`` (files, and folders searched recursively) into ``outdir``
    with ``recipe`` (a Recipe, a shipped recipe's name or TOML file, or operator names).

    The job behind ``enhance batch``: layout kept, a sidecar per output, a manifest line per photo,
    resuming (see the module's docstring), one bad photo never stopping the rest. With ``shared``,
    one parameter set is fitted to all photos (or reused from ``outdir/fitted.toml``) and applied
    to each. ``jobs`` photos are tuned at once, each in a thread with 1/``jobs`` of torch's CPU
    threads (torch's thread count is restored on return); on a GPU ``GPU_GROUP`` photos share one
    scorer batch. ``distributed``: this process is one rank of an initialised process group (see
    :func:`process_group`) and takes every world-size-th photo; the report gathers every rank's.

    Before any photo is read, every file the run will write is checked (see :mod:`enhance.outputs`
    and the module's docstring): a photo whose output or sidecar may not be written (an existing
    file of the user's without ``force``, an input, a path out of ``outdir``) gets a ``failed``
    record. ``report``: an HTML page of the tuned photos written at the end (by rank 0). ``reads``:
    other files the run reads (recipe, weights), never written. ``predictor``: each photo starts
    from its prediction (see :func:`enhance.tune.tune`; ``steps`` then defaults to the predictor's
    ``refine_steps``, and an HDR photo, which no predictor is trained on, climbs the recipe's); a
    finished photo is redone when another predictor (or none) is given.

    Callbacks, for progress: ``on_plan(photos of this rank, already finished)`` once before
    tuning, ``on_record(record)`` per photo (the skipped ones first), ``on_fit_step(step, mean
    score)`` during a shared fit.

    Raises BatchError when the output folder lies inside an input folder, two inputs would share
    an output, or the manifest, ``fitted.toml`` or ``report`` may not be written, and ValueError
    when a shared fit finds no readable photo.

    >>> import os, tempfile, torch, enhance, nima
    >>> d = tempfile.mkdtemp(); os.mkdir(f"{d}/in")
    >>> enhance.write(f"{d}/in/a.png", torch.rand(1, 3, 32, 48))
    >>> report = enhance.tune_folder([f"{d}/in"], f"{d}/out", "tonemap", nima.load_scorer(device="cpu"), steps=2)
    >>> report.line().split(";")[0], [r["output"] for r in report.records]
    ('batch: 1 done, 0 failed, 0 skipped', ['a.png'])
    """
    recipe = as_recipe(recipe)
    # the budget the manifest's key records; ``steps`` None is resolved per photo by the engine (an
    # HDR photo, which no predictor is trained on, climbs the recipe's steps)
    budget = (recipe.steps if predictor is None or shared else predictor.refine_steps) if steps is None else steps
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if distributed else (0, 1)
    device = scorer.device
    planned, missing = plan(inputs, outdir)
    mine = shard(planned, rank, world)
    manifest_path = Path(outdir) / manifest_name(rank if distributed else None)
    refused = check_batch(outdir, planned, mine, manifest_path, force=force, shared=shared, report=report,
                          reads=reads)
    if rank == 0:
        Path(outdir).mkdir(parents=True, exist_ok=True)
        outputs = [Path(outdir) / j.rel for j in planned if j.rel not in refused]
        clean_stale(outdir, [*outputs, *map(sidecar_path, outputs), Path(outdir) / FITTED])
    if distributed:
        torch.distributed.barrier()
    records: list[dict[str, Any]] = []

    def emit(record: dict[str, Any]) -> None:
        records.append(record)
        if on_record is not None:
            on_record(record)

    with _torch_threads(max(1, torch.get_num_threads() // jobs)):
        fit = None
        if shared:
            recipe, fit = shared_fit(outdir, planned, mine, recipe, scorer, steps=budget, seed=seed,
                                     distributed=distributed, on_step=on_fit_step)
        mode = "shared" if shared else "tune"
        if predictor is not None and not shared:
            from enhance.predict import fingerprint

            mode = f"predict {fingerprint(predictor)}"
        recipe_sha = recipe_sha256(recipe, budget, seed, recipe.strength, mode)
        manifest = Manifest(manifest_path)
        allowed = [j for j in mine if j.rel not in refused]
        skip = finished(allowed, outdir, recipe_sha, scorer.weights_sha256)
        if on_plan is not None:
            on_plan(len(mine), len(skip))
        for job in mine:
            if job.rel in refused:
                record = _line(job, "failed", refused[job.rel], recipe_sha, scorer.weights_sha256)
                manifest.append(record)
                emit(record)
            elif job.rel in skip:
                record = {**skip[job.rel], "path": str(job.src), "status": "skipped"}
                manifest.append(record)
                emit(record)
        values = [dict(st.start) for st in recipe.stages] if shared else None
        tuner = tuner_for(recipe, scorer, steps=steps, seed=seed, strength=None, values=values,
                          predictor=predictor)
        todo = [j for j in allowed if j.rel not in skip]
        for record in run(todo, outdir, tuner, manifest, scorer=scorer, recipe=recipe, recipe_sha=recipe_sha,
                          workers=jobs, group=GPU_GROUP if device.type == "cuda" and not shared else 1):
            emit(record)
    if distributed:
        parts: list[Any] = [None] * world
        torch.distributed.all_gather_object(parts, records)
        records = [r for part in parts for r in part]
    records.sort(key=lambda r: r["output"])
    if report is not None and rank == 0:
        from enhance.report import folder_items, write_report

        write_report(report, folder_items(outdir, records), title=f"enhance batch -o {outdir}")
    return BatchReport(records, missing, fit)


def check_batch(
    outdir: str | Path, planned: Sequence[Job], mine: Sequence[Job], manifest: Path, *, force: bool = False,
    shared: bool = False, report: str | Path | None = None, reads: Sequence[str | Path] = (),
) -> dict[str, str]:
    """Check every file a run will write before it reads a photo (see :mod:`enhance.outputs`).
    Returns output path -> the one-line reason, for each job of ``mine`` whose image or sidecar
    may not be written; raises BatchError when the ``manifest`` part, ``fitted.toml`` (``shared``)
    or ``report`` may not be written. Existing outputs that a manifest line names are the run's
    own; every other existing file needs ``force``."""
    from enhance.report import is_report

    root = Path(outdir)
    sources = Inputs([*(j.src for j in planned), *reads])
    try:
        check_writes([manifest], sources, force=True, root=root, make_folders=True)
        if shared:
            check_writes([root / FITTED], sources, force=force, owned=_is_fit, root=root, make_folders=True)
        if report is not None:
            check_writes([report], sources, force=force, owned=is_report)
            outputs = {(root / j.rel).resolve() for j in planned}
            if Path(report).resolve() in outputs | {sidecar_path(p) for p in outputs}:
                raise OutputError(report, "is also an output of this batch")
    except OutputError as exc:
        raise BatchError(str(exc)) from None
    if manifest.is_file() and not is_manifest(manifest):
        raise BatchError(f"{manifest}: exists and is not a manifest of enhance batch; refusing to append to it")
    owned = owned_outputs(root)
    refused = {}
    for job in mine:
        out = root / job.rel
        try:
            check_writes([out, sidecar_path(out)], sources, force=force, owned=owned.__contains__, root=root,
                         make_folders=True)
        except OutputError as exc:
            refused[job.rel] = str(exc)
    return refused


def _is_fit(path: Path) -> bool:
    """True when ``path`` is a ``fitted.toml`` that ``batch --shared`` wrote."""
    return opens_with(path, b"# fit ")


def _line(job: Job, status: str, error: str | None, recipe_sha: str, weights_sha: str | None) -> dict[str, Any]:
    """A manifest record without results: a ``failed`` photo, or a ``writing`` one whose outputs
    are about to be written (so that a kill leaves no output the next run takes for the user's)."""
    return {"path": str(job.src), "output": job.rel, "status": status, "error": error,
            "before": None, "after": None, "params": None, "seconds": None,
            "recipe_sha256": recipe_sha, "weights_sha256": weights_sha}


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's CPU thread count set to ``n`` for the block, then restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
