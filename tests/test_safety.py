"""Nothing a user owns is overwritten or leaked, and every bad input is a one-line error before any
work (issue 27): each case found by trying the commands as a careless or hostile user would."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

import cli
from enhance.batch import BatchError, read_manifest, tune_folder
from enhance.io import ImageError, read

ROOT = Path(__file__).resolve().parents[1]

try:
    import OpenEXR
except ImportError:
    OpenEXR = None


@pytest.fixture
def weights(weights_file: str) -> str:
    return weights_file


def _refuse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the command started work before refusing")


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command decodes a photo: the refusals under test come before that."""
    monkeypatch.setattr("enhance.files.read", _refuse)
    monkeypatch.setattr("enhance.batch.read", _refuse)


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch, no_decoding: None) -> None:
    """As ``no_decoding``, and not even the scorer may be loaded (tune, score, eval check first)."""
    monkeypatch.setattr(cli, "_scorer", _refuse)


def _photo(path: Path, seed: int = 0, size: tuple[int, int] = (40, 56)) -> Path:
    pixels = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix in (".jpg", ".json") else "PNG")
    return path


def _run(*args: object) -> "CliRunner.invoke":  # type: ignore[valid-type]
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(result: object, *names: str) -> str:
    """The single stderr line of a refused command, naming each of ``names``; exit status 2."""
    assert result.exit_code == 2, (result.exit_code, result.output)  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("enhance: "), lines
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


def _files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


# --- data loss ----------------------------------------------------------------------------------


def test_tune_never_writes_its_sidecar_over_the_input(tmp_path: Path, no_work: None) -> None:
    victim = _photo(tmp_path / "victim.jpg.json")  # a JPEG under a sidecar's name, tuned to victim.jpg
    before = _sha(victim)
    line = _one_line(_run("tune", victim, "-o", tmp_path / "victim.jpg", "--op", "exposure"), "victim.jpg.json")
    assert "input" in line
    assert _sha(victim) == before and not (tmp_path / "victim.jpg").exists()


def test_tune_never_writes_its_report_over_the_input(tmp_path: Path, no_work: None) -> None:
    src = _photo(tmp_path / "photo.png")
    before = _sha(src)
    line = _one_line(_run("tune", src, "-o", tmp_path / "out.jpg", "--report", src, "--op", "exposure"), "photo.png")
    assert "input" in line
    assert _sha(src) == before and not (tmp_path / "out.jpg").exists()


def test_tune_keeps_a_users_sidecar_without_force(tmp_path: Path, weights: str) -> None:
    src = _photo(tmp_path / "photo.png")
    mine = tmp_path / "out.jpg.json"
    mine.write_text("my notes\n")
    _one_line(_run("tune", src, "-o", tmp_path / "out.jpg", "--op", "exposure", "--steps", "1",
                   "--weights", weights), "out.jpg.json", "--force")
    assert mine.read_text() == "my notes\n" and not (tmp_path / "out.jpg").exists()
    forced = _run("tune", src, "-o", tmp_path / "out.jpg", "--op", "exposure", "--steps", "1", "--weights", weights,
                  "--force")
    assert forced.exit_code == 0, forced.output
    assert json.loads(mine.read_text())["output"] == str(tmp_path / "out.jpg")


def test_batch_keeps_the_users_files_in_outdir_unless_force(tmp_path: Path, weights: str) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _photo(src / "a.png", 1)
    _photo(src / "b.png", 2)
    out.mkdir()
    (out / "a.png").write_bytes(b"my own a.png")
    (out / "b.png.json").write_text("my own notes")
    args = ["batch", src, "-o", out, "--op", "exposure", "--steps", "1", "--quiet", "--weights", weights]
    result = _run(*args)
    assert result.exit_code == 1
    assert (out / "a.png").read_bytes() == b"my own a.png" and (out / "b.png.json").read_text() == "my own notes"
    assert not (out / "a.png.json").exists() and not (out / "b.png").exists()
    failed = {r["output"]: r["error"] for r in read_manifest(out) if r["status"] == "failed"}
    assert set(failed) == {"a.png", "b.png"} and all("--force" in e for e in failed.values())
    assert "a.png" in result.stderr and "b.png.json" in result.stderr
    # The refusals did not make the files the run's own: a second run still refuses them.
    assert _run(*args).exit_code == 1 and (out / "a.png").read_bytes() == b"my own a.png"
    forced = _run(*args, "--force")
    assert forced.exit_code == 0, forced.output
    assert read(out / "a.png").image.shape[-2:] == (40, 56) and json.loads((out / "b.png.json").read_text())


def test_batch_never_appends_its_manifest_through_a_symlink_out_of_outdir(tmp_path: Path, no_decoding: None,
                                                                          weights: str) -> None:
    src, out, outside = tmp_path / "in", tmp_path / "out", tmp_path / "elsewhere.jsonl"
    _photo(src / "a.png")
    out.mkdir()
    outside.write_text("someone else's log\n")
    (out / "manifest.jsonl").symlink_to(outside)
    _one_line(_run("batch", src, "-o", out, "--op", "exposure", "--quiet", "--weights", weights), "manifest.jsonl")
    assert outside.read_text() == "someone else's log\n" and sorted(os.listdir(out)) == ["manifest.jsonl"]


def test_batch_never_appends_to_a_file_that_is_not_its_manifest(tmp_path: Path, no_decoding: None,
                                                                weights: str) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    _photo(src / "a.png")
    out.mkdir()
    (out / "manifest.jsonl").write_text("my shopping list\nmilk\n")
    _one_line(_run("batch", src, "-o", out, "--op", "exposure", "--quiet", "--weights", weights), "manifest.jsonl",
              "not a manifest")
    assert (out / "manifest.jsonl").read_text() == "my shopping list\nmilk\n"


def test_a_report_replaces_only_a_page_enhance_wrote(tmp_path: Path, weights: str) -> None:
    src = _photo(tmp_path / "in" / "a.png")
    page = tmp_path / "page.html"
    page.write_text("my own page")
    _one_line(_run("rank", src, "--report", page, "--weights", weights), "page.html", "--force")
    assert page.read_text() == "my own page"
    page.unlink()
    for _ in range(2):  # the second run replaces the page the first one wrote
        result = _run("rank", src, "--report", page, "--weights", weights)
        assert result.exit_code == 0, result.output
    assert "<!DOCTYPE html>" in page.read_text()


# --- resources and hangs ------------------------------------------------------------------------


def test_devices_are_refused_before_reading(tmp_path: Path, weights: str) -> None:
    _one_line(_run("tune", "/dev/zero", "-o", tmp_path / "z.png", "--op", "exposure", "--weights", weights),
              "/dev/zero", "not a regular file")
    score = _run("score", "/dev/zero", "--weights", weights)
    assert score.exit_code == 1 and score.stderr.strip().splitlines() == [
        "enhance: /dev/zero: not a regular file (a character device)"]
    assert not (tmp_path / "z.png").exists()


def test_a_folder_and_an_oversized_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageError, match=r"dir\.jpg: not a regular file \(a directory\)"):
        read(tmp_path / "dir.jpg")
    big = _photo(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"big\.png: file too large"):
        read(big, max_bytes=big.stat().st_size - 1)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path, weights: str) -> None:
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    # A subprocess, so that a regression hangs only it; the bound is generous, not a speed target.
    run = subprocess.run([sys.executable, "-m", "cli", "tune", str(fifo), "--op", "exposure", "--weights", weights],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [f"enhance: {fifo}: not a regular file (a FIFO)"]


def _png_rows(width: int, height: int, rows: int, *, depth: int = 8, noise: bool = False) -> bytes:
    """A PNG whose header says ``width`` x ``height`` but whose data holds only ``rows`` rows."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = width * 3 * depth // 8
    rng = np.random.default_rng(0)
    raw = b"".join(b"\0" + (rng.integers(0, 256, row, dtype=np.uint8).tobytes() if noise else bytes(row))
                   for _ in range(rows))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(("width", "height", "depth", "noise"),
                         [(14000, 14000, 8, False), (200, 200, 8, False), (200, 200, 8, True), (200, 200, 16, True)])
def test_a_png_missing_its_pixel_data_is_refused(tmp_path: Path, width: int, height: int, depth: int,
                                                  noise: bool) -> None:
    path = tmp_path / "short.png"
    path.write_bytes(_png_rows(width, height, 4, depth=depth, noise=noise))
    with pytest.raises(ImageError, match=rf"short\.png: missing pixel data \(the header says {width}x{height}"):
        read(path)


def test_a_complete_interlaced_png_is_read(tmp_path: Path) -> None:
    """The pixel-data check counts Adam7 passes right: a whole interlaced PNG passes it."""
    pixels = (np.random.default_rng(3).random((13, 11, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "i.png", interlace=1)
    assert np.array_equal(np.round(read(tmp_path / "i.png").image[0].permute(1, 2, 0).numpy() * 255), pixels)


# --- tracebacks and late failures ----------------------------------------------------------------


def test_a_sidecar_name_that_is_a_folder_is_refused(tmp_path: Path, no_work: None) -> None:
    (tmp_path / "OUT.jpg.json").mkdir()
    _one_line(_run("tune", _photo(tmp_path / "p.png"), "-o", tmp_path / "OUT.jpg", "--op", "exposure"),
              "OUT.jpg.json", "folder")
    assert not (tmp_path / "OUT.jpg").exists()


def test_a_name_too_long_for_the_sidecars_temporary_name_is_refused(tmp_path: Path, no_work: None) -> None:
    out = tmp_path / ("x" * 240 + ".jpg")  # the name fits, its sidecar's temporary name does not
    _one_line(_run("tune", _photo(tmp_path / "p.png"), "-o", out, "--op", "exposure"), "too long")
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


def test_a_report_into_a_missing_folder_is_refused_before_any_output(tmp_path: Path, no_work: None) -> None:
    _one_line(_run("tune", _photo(tmp_path / "p.png"), "-o", tmp_path / "o.jpg", "--report",
                   tmp_path / "nope" / "r.html", "--op", "exposure"), "nope", "does not exist")
    assert sorted(os.listdir(tmp_path)) == ["p.png"]
    rank = _run("rank", tmp_path, "--report", tmp_path / "nope" / "r.html")
    _one_line(rank, "nope", "does not exist")


@pytest.mark.parametrize("device", ["bogus", "cuda", "cuda:7"])
def test_a_device_is_checked_before_any_work(tmp_path: Path, no_work: None, device: str) -> None:
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is valid here")
    src = _photo(tmp_path / "p.png")
    for args in (["tune", src, "--op", "exposure"], ["score", src], ["batch", src, "-o", tmp_path / "o", "--op",
                                                                      "exposure"]):
        _one_line(_run(*args, "--device", device), f"--device {device!r}")
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


def test_strength_nan_is_refused_before_any_work(tmp_path: Path, no_work: None) -> None:
    _one_line(_run("tune", _photo(tmp_path / "p.png"), "--op", "exposure", "--strength", "nan"), "--strength")


def test_apply_with_a_deeply_nested_sidecar(tmp_path: Path, no_work: None) -> None:
    params = tmp_path / "deep.json"
    params.write_text('{"ops": ' + "[" * 100_000 + "]" * 100_000 + "}")
    _one_line(_run("apply", _photo(tmp_path / "p.png"), "-o", tmp_path / "o.png", "--params", params), "deep.json")
    assert not (tmp_path / "o.png").exists()


def test_apply_values_that_overflow_name_the_sidecar(tmp_path: Path) -> None:
    src = _photo(tmp_path / "p.png")
    huge = tmp_path / "huge.json"
    huge.write_text('{"ops": [{"name": "exposure", "params": {"ev": 1' + "0" * 400 + "}}]}")
    _one_line(_run("apply", src, "-o", tmp_path / "o.png", "--params", huge), "huge.json")
    scene = tmp_path / "scene.hdr"
    cv2.imwrite(str(scene), np.full((8, 8, 3), 2.0, np.float32))
    scale = tmp_path / "scale.json"
    scale.write_text(json.dumps({"ops": [{"name": "tonemap", "params": {"exposure": 0.0, "shadows": 0.0,
                                                                       "highlights": 0.0}}], "hdr_scale": 1e308}))
    _one_line(_run("apply", scene, "-o", tmp_path / "o.png", "--params", scale), "scale.json")
    assert sorted(os.listdir(tmp_path)) == ["huge.json", "p.png", "scale.json", "scene.hdr"]


def test_a_recipe_that_is_not_utf8_is_named(tmp_path: Path, no_work: None) -> None:
    recipe = tmp_path / "latin1.toml"
    recipe.write_bytes('description = "café"\n[[op]]\nname = "exposure"\n'.encode("latin-1"))
    _one_line(_run("tune", _photo(tmp_path / "p.png"), "--recipe", recipe), "latin1.toml", "UTF-8")


def _scene(path: Path) -> Path:
    radiance = np.random.default_rng(4).random((24, 32, 3)).astype(np.float32) * 4
    cv2.imwrite(str(path), radiance[..., ::-1])
    return path


def test_hdr_with_the_default_output_name_becomes_a_16bit_png(tmp_path: Path, weights: str) -> None:
    scene = _scene(tmp_path / "scene.hdr")
    result = _run("tune", scene, "--op", "tonemap", "--steps", "1", "--weights", weights)
    assert result.exit_code == 0, result.output
    assert "16-bit PNG" in result.stdout
    assert read(tmp_path / "scene.enhanced.png").bit_depth == 16 and (tmp_path / "scene.enhanced.png.json").is_file()


def test_an_output_format_that_cannot_be_written_is_refused_before_tuning(tmp_path: Path, no_work: None) -> None:
    _one_line(_run("tune", _scene(tmp_path / "scene.hdr"), "-o", tmp_path / "out.hdr", "--op", "tonemap"),
              "out.hdr", "cannot write")


def test_batch_over_hdr_inputs_writes_pngs(tmp_path: Path, weights: str) -> None:
    (tmp_path / "in").mkdir()
    _scene(tmp_path / "in" / "scene.hdr")
    out = tmp_path / "out"
    result = _run("batch", tmp_path / "in", "-o", out, "--op", "tonemap", "--steps", "1", "--quiet",
                  "--weights", weights)
    assert result.exit_code == 0, result.output
    assert read(out / "scene.png").bit_depth == 16 and [r["status"] for r in read_manifest(out)] == ["writing", "done"]


def _eval_folder(tmp_path: Path) -> Path:
    for i in range(2):
        _photo(tmp_path / f"{i}.png", i)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not a photo")
    return tmp_path


def test_eval_names_and_counts_every_row_it_cannot_use(tmp_path: Path, weights: str) -> None:
    _eval_folder(tmp_path)
    csv = tmp_path / "r.csv"
    csv.write_text("path,mean\n0.png,4\n1.png,6\nmissing.png,5\nempty.png,3\nnotes.png,7\n")
    result = _run("eval", "--dataset", f"csv:{csv}", "--weights", weights, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert figures["n"] == 2 and figures["skipped"] == 3
    errors = result.stderr.strip().splitlines()
    for line, (name, problem) in zip(errors, [("missing.png", "no such file"), ("empty.png", "empty file"),
                                              ("notes.png", "not an image")]):
        assert f"r.csv:" in line and name in line and problem in line
    assert "3 rows skipped" in errors[3] and len(errors) == 4


@pytest.mark.parametrize(("text", "problem"), [
    ("path,mean\n0.png,nan\n", "r.csv:2: mean 'nan'"),
    ("path,mean\n0.png,500\n", "r.csv:2: mean '500'"),
    ("path,mean\n0.png,-3\n", "r.csv:2: mean '-3'"),
    ("path,mean,std\n0.png,5,-1\n", "r.csv:2: std '-1'"),
    ("path,mean\n0.png,5\n1.png\n", "r.csv:3: expected 2 fields, got 1"),
    ("path,mean\n", "r.csv: no rows after the header"),
    ("path,mean\nnotes.png,4\n", "no usable images"),
])
def test_eval_refuses_a_rating_file_it_cannot_use(tmp_path: Path, no_work: None, text: str, problem: str) -> None:
    _eval_folder(tmp_path)
    (tmp_path / "r.csv").write_text(text)
    result = _run("eval", "--dataset", f"csv:{tmp_path / 'r.csv'}")
    lines = result.stderr.splitlines()
    assert result.exit_code == 2 and problem in lines[-1], lines


def test_eval_json_is_strict_json_when_a_figure_cannot_be_computed(tmp_path: Path, weights: str) -> None:
    _eval_folder(tmp_path)
    (tmp_path / "r.csv").write_text("path,mean\n0.png,5\n1.png,5\n")  # equal ratings: no correlation
    result = _run("eval", "--dataset", f"csv:{tmp_path / 'r.csv'}", "--weights", weights, "--json")
    assert result.exit_code == 0
    figures = json.loads(result.stdout, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert figures["srcc"] is None and figures["n"] == 2


def _damaged() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    ok, png16 = cv2.imencode(".png", rng.integers(0, 65536, (32, 24, 3), dtype=np.uint16))
    ok2, hdr = cv2.imencode(".hdr", (rng.random((32, 24, 3)) * 4).astype(np.float32))
    assert ok and ok2
    files = {"cut16.png": png16.tobytes()[:-40], "cut.hdr": hdr.tobytes()[:-30]}
    if OpenEXR is not None:
        buf = io.BytesIO()
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                     {"RGBA": rng.random((32, 24, 4)).astype(np.float16)}).write(buf)
        files["cut.exr"] = buf.getvalue()[:-40]
    return files


def test_damaged_files_print_only_the_one_line_error(tmp_path: Path, weights: str) -> None:
    """libpng, OpenCV and OpenEXR print their own lines (OpenEXR on stdout) in a real process."""
    paths = []
    for name, data in _damaged().items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    run = subprocess.run([sys.executable, "-m", "cli", "score", *map(str, paths), "--weights", weights],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and run.stdout == ""
    lines = run.stderr.strip().splitlines()
    assert len(lines) == len(paths) and all(line.startswith(f"enhance: {tmp_path}/") for line in lines), lines


def test_batch_interrupted_twice_exits_cleanly_and_resumes(tmp_path: Path, weights: str) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        _photo(src / f"{i}.png", i, size=(64, 96))
    cmd = [sys.executable, "-m", "cli", "batch", str(src), "-o", str(out), "--op", "tonemap", "--quiet",
           "--weights", weights]
    proc = subprocess.Popen([*cmd, "--steps", "200"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300  # a bound on start-up only, never an assertion on speed
    while not (out / "manifest.jsonl").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr
    assert "terminate called" not in stderr and "Traceback" not in stderr and "interrupted" in stderr
    # Fewer steps redo every photo: what the interrupted run wrote is its own, replaced without --force.
    again = subprocess.run([*cmd, "--steps", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i}.png" for i in range(3)]
    assert not list(out.rglob("*.tmp"))


# --- fidelity -------------------------------------------------------------------------------------


def test_apply_to_tiff_carries_exif(tmp_path: Path, weights: str) -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[0x8769] = {0x9003: "2021:02:03 04:05:06"}
    src = tmp_path / "p.jpg"
    Image.fromarray((np.random.default_rng(6).random((40, 56, 3)) * 255).astype(np.uint8)).save(src, exif=exif)
    tuned = tmp_path / "t.jpg"
    assert _run("tune", src, "-o", tuned, "--op", "exposure", "--steps", "1", "--weights", weights).exit_code == 0
    for depth in ("8", "16"):
        out = tmp_path / f"a{depth}.tif"
        result = _run("apply", src, "-o", out, "--params", f"{tuned}.json", "--depth", depth)
        assert result.exit_code == 0, result.output
        with Image.open(out) as im:
            carried = im.getexif()
            assert carried[0x010F] == "TestCam" and carried.get_ifd(0x8769)[0x9003] == "2021:02:03 04:05:06", depth


def test_an_animated_webp_is_refused(tmp_path: Path) -> None:
    frames = [Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageError, match=r"anim\.webp: animated WEBP \(3 frames\)"):
        read(tmp_path / "anim.webp")


# --- the property: only the run's own outputs change -------------------------------------------


NAMES = st.one_of(
    st.sampled_from(["a.png", "a.png.json", "sub", "sub/b.jpg", "sub/b.jpg.json", "manifest.jsonl",
                     "manifest.rank0.jsonl", ".a.png.tmp", "x"]),
    st.text(st.characters(blacklist_categories=["Cs", "Cc"], blacklist_characters="/\\"), min_size=1,
            max_size=12).filter(lambda n: n not in (".", "..")),
)
ENTRY = st.tuples(NAMES, st.sampled_from(["file", "folder", "link-out-file", "link-out-folder", "link-in",
                                          "dangling"]), st.binary(min_size=1, max_size=40))


def _snapshot(*folders: Path) -> dict[str, object]:
    """Every path under ``folders``: file contents, link targets, folders (links not followed)."""
    seen: dict[str, object] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                p = Path(dirpath) / name
                seen[str(p)] = (("link", os.readlink(p)) if p.is_symlink() else
                                ("folder",) if p.is_dir() else ("file", p.read_bytes()))
    return seen


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(ENTRY, min_size=1, max_size=6))
@example(entries=[("a.png", "file", b"mine"), ("sub", "folder", b""), ("sub/b.jpg.json", "file", b"notes")])
@example(entries=[("a.png", "link-in", b""), ("manifest.jsonl", "link-out-file", b"")])
def test_only_the_runs_own_outputs_change(tmp_path_factory: pytest.TempPathFactory, tiny_scorer,
                                          entries: list[tuple[str, str, bytes]]) -> None:
    root = tmp_path_factory.mktemp("prop")
    src, out, outside = root / "in", root / "out", root / "outside"
    _photo(src / "a.png", 1, size=(16, 24))
    _photo(src / "sub" / "b.jpg", 2, size=(16, 24))
    (outside / "dir").mkdir(parents=True)
    (outside / "file").write_bytes(b"outside")
    out.mkdir()
    for name, kind, data in entries:
        path = out / name
        if os.path.lexists(path) or not path.parent.is_dir() or path.parent.is_symlink():
            continue
        try:
            if kind == "file":
                path.write_bytes(data)
            elif kind == "folder":
                path.mkdir()
            elif kind == "link-out-file":
                path.symlink_to(outside / "file")
            elif kind == "link-out-folder":
                path.symlink_to(outside / "dir", target_is_directory=True)
            elif kind == "link-in":
                path.symlink_to("x")
            else:
                path.symlink_to(root / "nowhere")
        except OSError:  # a name this file system refuses (too long in bytes)
            continue
    before = _snapshot(out, outside, src)
    planned = {out / rel for rel in ("a.png", "sub/b.jpg")}
    own = {p.resolve() for p in planned} | {Path(f"{p}.json").resolve() for p in planned} | {
        (out / "manifest.jsonl").resolve()}
    try:
        report = tune_folder([src], out, ["exposure"], tiny_scorer, steps=1)
        assert sorted(r["output"] for r in report.records) == ["a.png", "sub/b.jpg"]  # the run did run
    except BatchError:  # the whole run refused (a manifest it may not write): nothing may change
        own = set()
    after = _snapshot(out, outside, src)
    for path, state in before.items():
        assert after.get(path) == state, f"{path} changed"  # nothing that existed changed ...
    for path in set(after) - set(before):  # ... and what is new is the run's own (or a folder for it)
        assert after[path] == ("folder",) or Path(path).resolve() in own, f"{path} is not an output of this run"


def test_train_predictor_refuses_an_existing_file_before_training(tmp_path: Path) -> None:
    """An existing file at the predictor's output is the user's: refused without --force, untouched."""
    out = tmp_path / "mine.pt"
    out.write_bytes(b"the user's own file")
    before = _sha(out)
    r = _run("train-predictor", "--out", out, "--data", tmp_path / "no-such-data", "--steps", "1")
    assert r.exit_code == 2
    assert "already exists" in r.output and str(out) in r.output
    assert _sha(out) == before
