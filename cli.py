"""The ``enhance`` command: a thin click layer over the ``enhance`` and ``nima`` libraries."""

from __future__ import annotations

import gc
import json
import math
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn

import click


def _fail(message: str) -> NoReturn:
    click.echo(f"enhance: {message}", err=True)
    sys.exit(2)


def _leave_distributed(status: int) -> None:
    """End a torchrun worker once its process group is destroyed and its files are written.

    A torchrun worker can abort during interpreter teardown after its process group is destroyed
    ("terminate called without an active exception", no Python frame left), although every output is
    already written. Exiting without the teardown avoids it; only stdio is still buffered, so it is
    flushed first.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _scorer(weights: str | None, device: str) -> Any:
    from nima import load_scorer

    try:
        return load_scorer(weights, device=device)
    except ValueError as exc:
        _fail(str(exc))


@click.group()
@click.version_option(package_name="enhance")
def main() -> None:
    """Make photos look better by climbing a learned quality scorer (NIMA)."""
    quiet_decoders()


def quiet_decoders() -> None:
    """Keep the image decoders' own complaints about a damaged file (Pillow's warnings, tifffile's
    log lines) off the terminal: ``enhance`` reports each bad file itself, in one line."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    logging.getLogger("tifffile").setLevel(logging.CRITICAL + 1)
    keep_python_output()


def keep_python_output() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` write to duplicates of descriptors 1 and 2, so that
    ``enhance.io.quiet_decoders`` (which points 1 and 2 at /dev/null while a C decoder runs in one
    thread) never swallows what another thread prints. Streams that are not descriptors 1 and 2
    (a test's captured output) are left alone."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = getattr(sys, name)
        try:
            if stream.fileno() != fd:
                continue
        except (AttributeError, OSError, ValueError):
            continue
        stream.flush()
        line = getattr(stream, "line_buffering", False) or name == "stderr"
        setattr(sys, name, open(os.dup(fd), "w", buffering=1 if line else -1, encoding=stream.encoding,
                                 errors=stream.errors))


def _device(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """--device: auto, cpu, cuda or cuda:N, checked against this machine before any work."""
    if value is None or value == "auto":
        return value
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        _fail(f"--device {value!r}: not a device (auto, cpu, cuda or cuda:N)")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            _fail(f"--device {value!r}: CUDA is not available on this machine (use cpu or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            _fail(f"--device {value!r}: no such CUDA device (this machine has {count}: cuda:0..cuda:{count - 1})")
    elif device.type != "cpu":
        _fail(f"--device {value!r}: not supported (auto, cpu, cuda or cuda:N)")
    return value


def _finite(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        _fail(f"--{(param.name or '').replace('_', '-')} {value}: expected a finite number")
    return value


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--weights", type=click.Path(), help="Scorer weights file (default: the shipped ones).")
@click.option("--device", default="auto", show_default=True, callback=_device, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per image: path, mean, std, dist.")
def score(paths: tuple[str, ...], weights: str | None, device: str, as_json: bool) -> None:
    """Predict the opinion-score distribution of images and folders of images."""
    from enhance.io import ImageError
    from enhance.rank import find_images, score_files

    scorer = _scorer(weights, device)
    failed = 0
    files, missing = find_images(paths)
    for path in missing:
        click.echo(f"enhance: {path}: no such file or folder", err=True)
    for result in score_files(files, scorer):
        if isinstance(result, ImageError):
            failed += 1
            click.echo(f"enhance: {result}", err=True)
        elif as_json:
            click.echo(json.dumps(result.as_dict()))
        else:
            click.echo(f"{result.mean:6.3f} ± {result.std:5.3f}  {result.path}")
    if failed or missing:
        sys.exit(1)


@main.command("eval")
@click.option("--dataset", "dataset", required=True, help="KIND:PATH, KIND one of ava, tid2013, clive, koniq, biq2021, csv.")
@click.option("--weights", type=click.Path(), help="Scorer weights file (default: the shipped ones).")
@click.option("--split", type=click.Choice(["val", "train", "test"]),
              help="Only this split: val or train of the run recorded in the weights, or the dataset's own test split.")
@click.option("--device", default="auto", show_default=True, callback=_device, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True,
              help="One JSON object: n, srcc, plcc, emd1, emd2, accuracy, scale, skipped (null: not computable).")
def evaluate(dataset: str, weights: str | None, split: str | None, device: str, as_json: bool) -> None:
    """Agreement of the scorer with the human ratings of a dataset."""
    from nima.data import open_dataset
    from nima.evaluate import evaluate_samples, select_split

    try:
        ratings = open_dataset(dataset)
    except ValueError as exc:
        _fail(str(exc))
    for line in ratings.unusable:
        click.echo(f"enhance: {line}", err=True)
    if ratings.skipped:
        click.echo(f"enhance: {dataset}: {ratings.skipped} rows skipped (no usable image), "
                   f"{len(ratings.samples)} used", err=True)
    if not ratings.samples:
        _fail(f"{dataset}: no usable images")
    scorer = _scorer(weights, device)
    try:
        samples = select_split(ratings.samples, ratings.root, scorer.meta, split, ratings.official_split)
    except ValueError as exc:
        _fail(str(exc))
    figures: dict[str, Any] = dict(evaluate_samples(scorer.model, samples, scorer.device))
    figures["scale"] = ratings.scale.name
    figures["skipped"] = ratings.skipped
    if as_json:  # strict JSON: a figure that cannot be computed (NaN) is null
        click.echo(json.dumps({k: v if not isinstance(v, float) or math.isfinite(v) else None
                               for k, v in figures.items()}, allow_nan=False))
    else:
        click.echo(f"{ratings.kind} ({ratings.scale.name}), {figures['n']} images"
                   + (f", split {split}" if split else "") + (f", {ratings.skipped} skipped" if ratings.skipped else ""))
        for key in ("srcc", "plcc", "emd1", "emd2", "accuracy"):
            click.echo(f"  {key:9s}{figures[key]:.4f}")


@main.command()
@click.option("--config", "config_file", type=click.Path(),
              help="TOML run configuration (configs/default.toml trains the shipped scorer's candidate successor); options given override it.")
@click.option("--dataset", "datasets", multiple=True, help="KIND:PATH of human ratings; repeat for several.")
@click.option("--data-root", help="Folder that relative dataset and pristine-photo paths are read under.")
@click.option("--backbone", help="efficientnet_lite0 (default), efficientnet_lite1, efficientnet_lite2, mobilenet_v2, ...")
@click.option("--init", type=click.Path(), help="Start from this NIMA weights file instead of ImageNet features.")
@click.option("--epochs", type=click.IntRange(min=1))
@click.option("--batch-size", type=click.IntRange(min=2))
@click.option("--lr-backbone", type=float)
@click.option("--lr-head", type=float)
@click.option("--out", type=click.Path(), help="Weights file to write (its run folder: OUT with the suffix .run).")
@click.option("--resume", is_flag=True, default=None, help="Continue the run from its last saved epoch.")
@click.option("--seed", type=int, help="Initialisation, data order and augmentation.")
@click.option("--device", callback=_device, help="auto, cpu, cuda or cuda:N.")
@click.option("--workers", type=click.IntRange(min=0), help="Image-loading processes.")
def train(config_file: str | None, datasets: tuple[str, ...], **options: Any) -> None:
    """Train a NIMA scorer on human ratings plus synthetic two-sided distortions."""
    from enhance.outputs import check_writes
    from nima.training import read_config, train as run

    try:
        config = read_config(config_file, datasets=list(datasets) or None, **options)
        # an existing weights file is replaced (as before), but never the run's own starting weights
        check_writes([config.out], _reads(None, config.init), force=True, make_folders=True)
        figures = run(config)
    except ValueError as exc:
        _fail(str(exc))
    click.echo(json.dumps({"out": str(Path(config.out)), **figures}))


def _reads(recipe: str | None, weights: str | None) -> list[str]:
    """The files besides the photos that a command reads (a recipe file, weights): never outputs."""
    return [p for p in (recipe, weights) if p is not None and os.path.isfile(p)]


def _recipe(ops: tuple[str, ...], recipe: str | None) -> Any:
    from enhance.recipe import as_recipe

    if bool(ops) == bool(recipe):
        _fail("give either --op NAME (repeatable) or --recipe NAME|FILE")
    try:
        return as_recipe(recipe or list(ops))
    except ValueError as exc:
        _fail(str(exc))


def _prediction_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--steps``, ``--no-predict`` and ``--predictor``, shared by tune and batch."""
    for option in reversed([
        click.option("--steps", type=click.IntRange(0, 10_000),
                     help="Step budget (default: after a prediction, the predictor's own count of refining steps, "
                          "see enhance/predictors/README.md; else the recipe's, 50); 0 applies the prediction alone."),
        click.option("--no-predict", is_flag=True,
                     help="Climb from the recipe's start values (the identity), not from a prediction."),
        click.option("--predictor", "predictor_file", type=click.Path(),
                     help="Parameter predictor file (default: the shipped one trained for the recipe, if any)."),
    ]):
        command = option(command)
    return command


@main.command()
@click.argument("src", type=click.Path())
@click.option("-o", "--out", type=click.Path(), help="Output file (default: <stem>.enhanced<ext> beside the input).")
@click.option("--op", "ops", multiple=True, help="Operator to tune; repeat for a pipeline (see `enhance recipes`).")
@click.option("--recipe", help="A shipped recipe's name or a TOML file.")
@_prediction_options
@click.option("--strength", type=click.FloatRange(0, 100), callback=_finite,
              help="Pull toward identity (default: the recipe's strength, or its hdr_strength for HDR input).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--optimizer", type=click.Choice(["adam", "nelder-mead"]), default="adam", show_default=True)
@click.option("--weights", type=click.Path(), help="Scorer weights file (default: the shipped ones).")
@click.option("--device", default="auto", show_default=True, callback=_device, help="auto, cpu, cuda or cuda:N.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--json", "as_json", is_flag=True, help="Print the sidecar record as JSON on stdout.")
@click.option("--report", type=click.Path(), help="Write a self-contained HTML report here.")
@click.option("--depth", "bit_depth", type=click.Choice(["8", "16"]),
              help="Bits per sample of a PNG or TIFF output (default: 16 when the input has more than 8 bits, HDR included).")
def tune(src: str, out: str | None, ops: tuple[str, ...], recipe: str | None, steps: int | None, no_predict: bool,
         predictor_file: str | None, strength: float | None, seed: int, optimizer: str, weights: str | None,
         device: str, force: bool, as_json: bool, report: str | None, bit_depth: str | None) -> None:
    """Tune operators on one photo to raise its predicted score; write the photo and a JSON sidecar.

    Where a parameter predictor is trained for the recipe (shipped: see enhance/predictors/, or
    --predictor), the photo starts from its prediction: a few refining steps follow, and the better
    of prediction and refinement on the whole photo is kept; --steps 0 applies the prediction alone.
    Where none is, and with --no-predict, the climb starts from the identity, as it always did.
    """
    from enhance.files import check_tune, default_output, sidecar_path, tune_file
    from enhance.io import ImageError
    from enhance.render import TuneError

    chosen = _recipe(ops, recipe)
    target = out or str(default_output(src))
    reads = _reads(recipe, weights) + _reads(None, predictor_file)
    try:
        check_tune(src, target, force=force, report=report, inputs=reads)  # before loading the scorer
    except ValueError as exc:
        _fail(str(exc))
    predictor = _start(chosen, steps, predictor_file, none_because="--no-predict" if no_predict else None)
    scorer = _scorer(weights, device)
    try:
        record = tune_file(src, target, chosen, scorer, force=force, seed=seed, steps=steps, strength=strength,
                           optimizer=optimizer, bit_depth=int(bit_depth) if bit_depth else None, report=report,
                           inputs=reads, predictor=predictor)
    except (ImageError, TuneError, ValueError, OSError) as exc:
        _fail(" ".join(str(exc).split()))
    if as_json:
        click.echo(json.dumps(record))
        return
    before, after = record["score"]["before"]["mean"], record["score"]["after"]["mean"]
    objective = f"objective {record['objective']['before']['full']['mean']:.3f} -> " \
                f"{record['objective']['after']['full']['mean']:.3f}"
    if record["kept_input"]:
        click.echo(f"{src}: no improvement found (score {before:.3f}; {objective}); wrote the input unchanged to {target}")
    else:
        click.echo(f"{src}: score {before:.3f} -> {after:.3f} ({objective}) in {record['steps']} steps; wrote {target}")
    if Path(target).suffix.lower() != Path(src).suffix.lower() and out is None:
        click.echo(f"  ({Path(src).suffix} files cannot be written: the output is a "
                   f"{bit_depth or 16}-bit PNG; give -o for another format)")
    if chosen.select == "best" or record["predicted"] is not None:
        click.echo(f"  {record['note']}")
    for o in record["ops"]:
        click.echo(f"  {o['name']}: " + ", ".join(f"{k}={v:+.3f}" for k, v in o["params"].items()))
    click.echo(f"  record: {sidecar_path(target)}")


def _predictor(recipe: Any, path: str | None) -> Any:
    """The predictor in ``path`` (ValueError unless it was trained for ``recipe``), or the shipped
    one trained for ``recipe``, or None."""
    from enhance.predict import check_predictor, find_predictor, load_predictor

    if path is None:
        return find_predictor(recipe)
    predictor = load_predictor(path)
    check_predictor(predictor, recipe)
    return predictor


def _start(recipe: Any, steps: int | None, path: str | None, none_because: str | None) -> Any:
    """Where tune and batch start: the predictor (`_predictor`; None when ``none_because`` names the
    option that asks for none). ``steps`` None stays the engine's to resolve per photo: the
    predictor's ``refine_steps`` after a prediction, the recipe's for a photo climbed from its start
    (HDR input, which no predictor is trained on). Exits with a one-line error for a predictor that
    does not fit, and for ``--steps 0`` with no prediction to apply."""
    try:
        predictor = None if none_because else _predictor(recipe, path)
    except ValueError as exc:
        _fail(str(exc))
    if steps == 0 and predictor is None:
        _fail("--steps 0 applies a prediction, and " + (f"{none_because} asks for none" if none_because else
              f"no parameter predictor is trained for these operators ({recipe.name}); give --predictor FILE"))
    return predictor


@main.command("train-predictor")
@click.option("--op", "ops", multiple=True, help="Operator to predict; repeat for a pipeline (what `tune --op` climbs).")
@click.option("--recipe", help="A shipped recipe's name or a TOML file (default: tonemap, when no --op is given).")
@click.option("--out", type=click.Path(), help="Predictor file (default: <recipe>.predictor.pt here).")
@click.option("--data", type=click.Path(), default="../shared/data", show_default=True,
              help="Folder holding clive/ and kodak/ (the scorer's validation photos and kodim19-24 are left out).")
@click.option("--also", multiple=True, type=click.Path(),
              help="More training photos: a folder, or a CSV whose `path` column lists photos under --data "
                   "(configs/sources/biq2021-best.csv: BIQ2021 Train's best-rated tenth); repeatable.")
@click.option("--steps", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
@click.option("--batch", type=click.IntRange(1, 1024), default=8, show_default=True, help="Photos per step.")
@click.option("--lr", type=click.FloatRange(0, 1, min_open=True), default=2e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weights", type=click.Path(), help="Scorer weights file (default: the shipped ones).")
@click.option("--device", default="cpu", show_default=True, callback=_device, help="cpu, cuda or cuda:N.")
@click.option("--resume", is_flag=True, help="Continue from the run's checkpoint (<out without .pt>.run/state.pt).")
@click.option("--init", type=click.Path(),
              help="Start from this predictor file (the same recipe), e.g. to train a shipped one against new scorer weights.")
@click.option("--force", is_flag=True, help="Replace an existing predictor file (a resumed run may always).")
def train_predictor_cmd(ops: tuple[str, ...], recipe: str | None, out: str | None, data: str, also: tuple[str, ...],
                        steps: int, batch: int, lr: float, seed: int, weights: str | None, device: str, resume: bool,
                        init: str | None, force: bool) -> None:
    """Train a parameter predictor for a recipe (or the --op pipeline) by climbing the frozen scorer
    through its operators."""
    from tqdm import tqdm

    from enhance.outputs import check_writes
    from enhance.predict import PredictorTraining, starting_predictor, train_predictor, training_photos

    tuned = _recipe(ops, recipe or (None if ops else "tonemap"))
    name = tuned.name
    out = out or f"{name}.predictor.pt"
    config = PredictorTraining(tuned, out, steps=steps, batch=batch, lr=lr, seed=seed, resume=resume, init=init)
    try:  # before any training
        check_writes([out], _reads(recipe, weights) + _reads(None, init), force=force or resume)
        if init is not None:
            starting_predictor(init, tuned, config.width)
    except ValueError as exc:
        _fail(str(exc))
    scorer = _scorer(weights, device)
    try:
        photos = training_photos(data, scorer.meta, also)
    except ValueError as exc:
        _fail(str(exc))
    with tqdm(total=steps, desc=f"train-predictor {name}", unit="step", file=sys.stderr) as bar:
        def on_step(step: int, objective: float) -> None:
            bar.n = step
            bar.set_postfix(objective=f"{objective:.3f}")

        trained = train_predictor(config, photos, scorer, on_step)
        bar.n = len(trained.meta["history"])  # a resumed run that had nothing left to do
        bar.refresh()
    click.echo(f"{len(photos)} photos, {steps} steps; wrote {config.out}")


@main.command("apply")
@click.argument("src", type=click.Path())
@click.option("-o", "--out", type=click.Path(), required=True, help="Output file.")
@click.option("--params", "params_file", type=click.Path(), required=True, help="A sidecar JSON written by tune.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--depth", "bit_depth", type=click.Choice(["8", "16"]),
              help="Bits per sample of a PNG or TIFF output (default: 16 when the input has more than 8 bits, HDR included).")
def apply_cmd(src: str, out: str, params_file: str, force: bool, bit_depth: str | None) -> None:
    """Re-apply recorded parameters to a photo (any size of it) without tuning."""
    from enhance.files import apply_file
    from enhance.io import ImageError

    try:
        done = apply_file(src, out, params_file, force=force, bit_depth=int(bit_depth) if bit_depth else None)
    except (ImageError, ValueError) as exc:
        _fail(str(exc))
    click.echo(f"{src}: applied {', '.join(o['name'] for o in done['ops'])}; wrote {out}")


@main.command()
def recipes() -> None:
    """List the shipped recipes and the operators, one line each."""
    from enhance import ops
    from enhance.recipe import builtin_recipes, load_recipe

    click.echo("recipes (--recipe NAME):")
    for name, path in sorted(builtin_recipes().items()):
        r = load_recipe(path)
        stages = " > ".join(s.op.name for s in r.stages) if r.select == "all" else \
            "one of: " + ", ".join(s.op.name for s in r.stages)
        click.echo(f"  {name:10s} {r.description}  [{stages}]")
    click.echo("operators (--op NAME):")
    for name in ops.names():
        op = ops.get(name)
        click.echo(f"  {name:14s} {op.doc}  ({', '.join(p.name for p in op.params)})")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--top", type=click.IntRange(1), help="Show only the K best.")
@click.option("--weights", type=click.Path(), help="Scorer weights file (default: the shipped ones).")
@click.option("--device", default="auto", show_default=True, callback=_device, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per image, best first.")
@click.option("--report", type=click.Path(), help="Write a self-contained HTML page of the ranking here.")
@click.option("--force", is_flag=True, help="Replace an existing --report file that enhance did not write.")
def rank(paths: tuple[str, ...], top: int | None, weights: str | None, device: str, as_json: bool,
         report: str | None, force: bool) -> None:
    """Sort images by predicted mean score, best first."""
    from enhance.rank import find_images, rank_files

    files, missing = find_images(paths)
    if report:
        from enhance.outputs import check_writes
        from enhance.report import is_report

        try:
            check_writes([report], [*files, *_reads(None, weights)], force=force, owned=is_report)
        except ValueError as exc:
            _fail(str(exc))
    scorer = _scorer(weights, device)
    ranked, errors = rank_files(files, scorer)
    for path in missing:
        click.echo(f"enhance: {path}: no such file or folder", err=True)
    for err in errors:
        click.echo(f"enhance: {err}", err=True)
    shown = ranked[:top] if top else ranked
    for i, s in enumerate(shown, 1):
        click.echo(json.dumps({"rank": i, **s.as_dict()}) if as_json else f"{i:4d}  {s.mean:6.3f} ± {s.std:5.3f}  {s.path}")
    if report:
        from enhance.io import read
        from enhance.report import rank_item, write_report

        write_report(report, [rank_item(s.path, read(s.path).image, s) for s in shown], title="enhance rank")
    if errors or missing:
        sys.exit(1)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--op", "ops", multiple=True, help="Operator to tune; repeat for a pipeline (see `enhance recipes`).")
@click.option("--recipe", help="A shipped recipe's name or a TOML file (e.g. a fitted.toml).")
@click.option("--shared", is_flag=True, help="Fit ONE parameter set to all photos, apply it to each; "
              "writes OUTDIR/fitted.toml.")
@_prediction_options
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weights", type=click.Path(), help="Scorer weights file (default: the shipped ones).")
@click.option("--device", default="auto", show_default=True, callback=_device, help="auto, cpu, cuda or cuda:N.")
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Photos tuned at once, each in its own thread with 1/N of torch's CPU threads.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per photo (its manifest line) on stdout.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--distributed", is_flag=True, help="Run as one rank of `torchrun` (automatic when WORLD_SIZE > 1).")
@click.option("--report", type=click.Path(), help="Write a self-contained HTML page of the tuned photos here.")
@click.option("--force", is_flag=True, help="Replace existing files in OUTDIR that no earlier run of this batch "
              "wrote (by default their photos fail).")
def batch(inputs: tuple[str, ...], outdir: str, ops: tuple[str, ...], recipe: str | None, shared: bool,
          steps: int | None, no_predict: bool, predictor_file: str | None, seed: int, weights: str | None, device: str, jobs: int, as_json: bool, quiet: bool,
          distributed: bool, report: str | None, force: bool) -> None:
    """Tune every photo of files and folders (recursive) into OUTDIR, keeping the layout.

    Each output gets a JSON sidecar and a line in OUTDIR/manifest.jsonl; running the same command
    again resumes, skipping the finished photos. Reading the next photo and writing the last one
    overlap tuning; --jobs N tunes N photos at once (on 2 cores, --jobs 2 keeps both busy with one
    torch thread each); on a GPU photos are tuned 8 at a time in one scorer batch. Under
    `torchrun --nproc-per-node M -m cli batch ...` every rank takes every M-th photo.
    Existing files in OUTDIR that no earlier run recorded in its manifest are the user's: their
    photos fail unless --force. Ctrl-C stops at once (exit status 130); run again to resume.
    Exit status 1 when any photo failed.
    Where a parameter predictor is trained for the recipe (or given with --predictor), each photo
    starts from its prediction, as in `enhance tune` (not with --shared, which fits one set).
    """
    chosen = _recipe(ops, recipe)
    predictor = _start(chosen, steps, predictor_file,
                       none_because="--no-predict" if no_predict else "--shared" if shared else None)
    previous = signal.signal(signal.SIGINT, _interrupt)
    try:
        _batch(inputs, outdir, chosen, shared, steps, seed, weights, device, jobs, as_json, quiet, distributed,
               report, force, _reads(recipe, weights) + _reads(None, predictor_file), predictor)
    except KeyboardInterrupt:
        # Leave at once: the finished photos are on disk with their manifest lines, and what was in
        # flight is redone by the next run. os._exit skips waiting for the threads tuning them and
        # the interpreter's teardown, which aborts ("terminate called ...") under torch's threads.
        click.echo("enhance: interrupted; finished photos are kept, run the same command again to resume",
                   err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt(signum: int, frame: Any) -> None:
    """The first Ctrl-C of a batch stops it (KeyboardInterrupt); later ones are ignored while it stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _batch(inputs: tuple[str, ...], outdir: str, chosen: Any, shared: bool, steps: int | None, seed: int,
           weights: str | None, device: str, jobs: int, as_json: bool, quiet: bool, distributed: bool,
           report: str | None, force: bool, reads: list[str], predictor: Any) -> None:
    """The body of ``batch``."""
    from contextlib import nullcontext

    from tqdm import tqdm

    from enhance.batch import BatchError, process_group, tune_folder

    distributed = distributed or int(os.environ.get("WORLD_SIZE", "1")) > 1
    with process_group(device) if distributed else nullcontext((0, 1, device)) as (rank, _, device):
        scorer = _scorer(weights, device)
        show = rank == 0 and not quiet
        fits = len(chosen.stages) if chosen.select == "best" else 1  # select = "best" fits each stage alone
        fit_bar = tqdm(total=(steps or chosen.steps) * fits, desc="fit", unit="step", disable=not (show and shared),
                       leave=False, file=sys.stderr)
        bar = tqdm(unit="img", disable=not show, file=sys.stderr)

        def on_plan(total: int, skipped: int) -> None:
            fit_bar.close()
            bar.reset(total)

        def on_record(record: dict[str, Any]) -> None:
            bar.update()
            if record["status"] == "failed":
                bar.write(f"enhance: {record['error']}", file=sys.stderr)
            if as_json:
                click.echo(json.dumps(record))

        try:
            done = tune_folder(inputs, outdir, chosen, scorer, shared=shared, steps=steps, seed=seed, jobs=jobs,
                               distributed=distributed, on_plan=on_plan, on_record=on_record,
                               on_fit_step=lambda i, s: fit_bar.update(), force=force, report=report, reads=reads,
                               predictor=predictor)
        except (BatchError, ValueError) as exc:
            _fail(str(exc))
        finally:
            fit_bar.close()
            bar.close()
    if rank == 0:
        for path in done.missing:
            click.echo(f"enhance: {path}: no such file or folder", err=True)
        if done.fit is not None:
            fit = done.fit
            click.echo(f"fit on {fit.images} images: mean objective {fit.before:.3f} -> {fit.after:.3f}"
                       + (" (no gain: identity kept)" if fit.kept_input else ""), err=as_json)
        click.echo(done.line(), err=as_json)
    if distributed:
        _leave_distributed(0 if done.ok else 1)
    if not done.ok:
        sys.exit(1)


def run() -> None:
    """The ``enhance`` console script: :func:`main`, whose objects are frozen out of the garbage
    collector on the way out, so that the interpreter's last collections do not walk every object
    torch created (a measurable part of a one-photo command's wall time; benchmarks/RESULTS.md)."""
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    run()
