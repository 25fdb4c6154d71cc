"""The classical baselines of ``aekit denoise`` and ``aekit inpaint`` (aekit.tasks.classical): each does
its job on small synthetic images, each setting is chosen on the validation images, a missing
optional extra skips its baselines with one stderr line while the others run, and the JSON names
every baseline that ran."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from aekit.errors import AekitError
from aekit.tasks import classical
from aekit.tasks.denoise import BM3D_SIGMAS, MEDIAN_WINDOWS, NLM_HS, TV_WEIGHTS, denoise_report, median, psnr
from aekit.tasks.inpaint import TELEA_RADII, inpaint_report, masked_psnr
from tests.badinput import run_cli

EXTRA_MODULES = ("bm3d", "skimage.restoration", "cv2")


class Identity:
    """A stand-in autoencoder that gives its input back: what these tests look at is the baselines."""

    output = "sigmoid"

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.input_shape = shape

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)


def smooth(n: int, size: int = 24, freq: float = 1.0, seed: int = 0) -> np.ndarray:
    """(n, 1, size, size) smooth images in [0.15, 0.85]: products of sines with random phases."""
    u, v = np.meshgrid(np.linspace(0, 1, size), np.linspace(0, 1, size), indexing="ij")
    phase = np.random.default_rng(seed).random((n, 2, 1, 1)) * 2 * np.pi
    x = 0.5 + 0.35 * np.sin(2 * np.pi * freq * u + phase[:, 0]) * np.cos(2 * np.pi * freq * v + phase[:, 1])
    return x[:, None].astype(np.float32)


def gaussian_noise(x: np.ndarray, sigma: float, seed: int = 1) -> np.ndarray:
    return np.clip(x + sigma * np.random.default_rng(seed).standard_normal(x.shape), 0, 1).astype(np.float32)


def square(size: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    lo = (size - side) // 2
    mask[lo : lo + side, lo : lo + side] = True
    return mask


# --- each baseline on a tiny image ----------------------------------------------------------------

@pytest.mark.parametrize(("denoiser", "setting", "gain_db"), [(classical.bm3d, 0.15, 8.0),
                                                              (classical.nl_means, 0.1, 4.0),
                                                              (classical.total_variation, 0.1, 6.0)])
def test_bm3d_nlm_and_tv_raise_the_psnr_of_a_noisy_image(denoiser, setting: float, gain_db: float) -> None:
    clean = smooth(4)
    noisy = gaussian_noise(clean, 0.15)  # 16.6 dB
    out = denoiser(noisy, setting)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert psnr(clean, np.clip(out, 0, 1)) > psnr(clean, noisy) + gain_db


@pytest.mark.parametrize("size", [(6, 6), (8, 8), (8, 20)])
def test_bm3d_takes_images_no_larger_than_its_blocks(size: tuple[int, int]) -> None:
    """The library crashes the process on a side of 8 pixels: such images are mirrored to 9 first."""
    clean = smooth(3, size=20)[:, :, : size[0], : size[1]]
    noisy = gaussian_noise(clean, 0.1)
    out = classical.bm3d(noisy, 0.1)
    assert out.shape == noisy.shape and psnr(clean, np.clip(out, 0, 1)) > psnr(clean, noisy)


def test_the_median_removes_salt_and_pepper() -> None:
    clean = smooth(4)
    rng = np.random.default_rng(1)
    hit, salt = rng.random(clean.shape) < 0.1, rng.random(clean.shape) < 0.5
    noisy = np.where(hit, salt.astype(np.float32), clean)  # 15 dB
    assert psnr(clean, median(noisy, 3)) > psnr(clean, noisy) + 12


def test_biharmonic_and_telea_fill_a_hole_in_a_smooth_image_better_than_the_mean_image() -> None:
    train, test = smooth(50, seed=2), smooth(6, seed=3)
    r = inpaint_report(Identity((1, 24, 24)), train, test, "center:8", iters=1, val_x=smooth(6, seed=4))
    b = r["baselines"]
    assert set(b) == {"mean_image", "nearest_observed", "biharmonic", "telea"} and r["skipped"] == {}
    assert b["biharmonic"] > b["mean_image"] + 10  # 33 dB against 15: the smoothest surface is the image
    assert b["telea"] > b["mean_image"] + 3
    assert r["best_baseline"] == "biharmonic" and r["settings"]["telea"]["radius"] in TELEA_RADII


def test_the_biharmonic_fill_of_a_batch_is_each_image_filled_alone(monkeypatch) -> None:
    x, mask = smooth(5, size=16), square(16, 6)
    monkeypatch.setattr(classical, "BIHARMONIC_BATCH", 2)  # three solves: 2 + 2 + 1 images
    together = classical.biharmonic(x, mask)
    from skimage.restoration import inpaint_biharmonic

    alone = np.stack([inpaint_biharmonic(im[0], mask)[None] for im in x])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    assert np.array_equal(together[:, :, ~mask], x[:, :, ~mask])  # the observed pixels stay


def test_telea_keeps_the_range_of_data_outside_unit() -> None:
    x, mask = 40 * smooth(2, size=16) - 20, square(16, 4)  # values from -14 to 14
    out = classical.telea(x, mask, 3)
    np.testing.assert_allclose(out[:, :, ~mask], x[:, :, ~mask], atol=1e-3)
    assert out.min() > -14.5 and out.max() < 14.5


@pytest.mark.parametrize(("denoiser", "chunk", "setting"), [(classical.bm3d, "_bm3d_chunk", 0.1),
                                                            (classical.nl_means, "_nl_means_chunk", 0.1)])
def test_a_batch_is_spread_over_a_thread_a_cpu_with_the_same_result(denoiser, chunk: str, setting: float,
                                                                     monkeypatch) -> None:
    import threading

    x = gaussian_noise(smooth(20, size=12), 0.1)
    alone = denoiser(x, setting)  # AEKIT_THREADS=1 in the tests: on this thread
    threads: set[str] = set()
    work = getattr(classical, chunk)
    together = threading.Barrier(3, timeout=60)  # 12 chunks pass it 3 at a time: only if 3 threads share them

    def spy(part: np.ndarray, arg: float) -> np.ndarray:
        together.wait()
        threads.add(threading.current_thread().name)
        return work(part, arg)

    monkeypatch.setattr(classical, chunk, spy)
    monkeypatch.setattr(classical, "POOL_MIN", 8)
    monkeypatch.setenv("AEKIT_THREADS", "3")
    np.testing.assert_array_equal(denoiser(x, setting), alone)
    assert len(threads) == 3 and all(t.startswith("aekit-baseline") for t in threads)


def test_more_threads_than_images_a_thread_leave_no_chunk_empty(monkeypatch) -> None:
    x = gaussian_noise(smooth(70, size=10), 0.1)
    monkeypatch.setenv("AEKIT_THREADS", "64")  # 256 chunks of 70 images would leave most empty
    np.testing.assert_array_equal(classical.nl_means(x, 0.1), classical._nl_means_chunk(x[:, 0], 0.1)[:, None])


# --- settings chosen on validation images -------------------------------------------------------

def test_each_denoising_setting_is_chosen_on_the_validation_images() -> None:
    """The same test images, two validation sets: flat images want stronger smoothing than smooth
    ones. A choice made on the test images (or on none) would not move."""
    train, test = smooth(40, seed=5), smooth(4, seed=6)
    names = "median,bm3d,nl_means,total_variation"
    model = Identity((1, 24, 24))
    on_smooth = denoise_report(model, train, smooth(6, seed=7), test, "gaussian:0.1", baselines=names)
    on_flat = denoise_report(model, train, np.full((6, 1, 24, 24), 0.5, np.float32), test, "gaussian:0.1",
                             baselines=names)
    for name, key, grid in [("median", "window", MEDIAN_WINDOWS), ("bm3d", "sigma", BM3D_SIGMAS),
                            ("nl_means", "h", NLM_HS), ("total_variation", "weight", TV_WEIGHTS)]:
        assert on_flat["baselines"][name][key] > on_smooth["baselines"][name][key], name
        assert on_flat["baselines"][name][key] in grid and on_smooth["baselines"][name][key] in grid
    # and the test images never choose: other test images, the same validation images, the same settings
    again = denoise_report(model, train, smooth(6, seed=7), np.full((4, 1, 24, 24), 0.5, np.float32),
                           "gaussian:0.1", baselines=names)
    assert all(again["baselines"][n].keys() == on_smooth["baselines"][n].keys() and
               {k: v for k, v in again["baselines"][n].items() if k != "psnr"} ==
               {k: v for k, v in on_smooth["baselines"][n].items() if k != "psnr"} for n in names.split(","))


def test_telea_radius_is_chosen_on_the_validation_images() -> None:
    """Noise wants the widest average, a smooth image nearer pixels; the test images are the same."""
    train, test, mask = smooth(20, seed=8), smooth(4, seed=9), square(24, 8)
    model = Identity((1, 24, 24))
    noise = np.random.default_rng(0).random((6, 1, 24, 24)).astype(np.float32)
    on_noise = inpaint_report(model, train, test, "center:8", iters=1, val_x=noise, baselines="telea")
    on_smooth = inpaint_report(model, train, test, "center:8", iters=1, val_x=smooth(6, seed=10), baselines="telea")
    radius = on_smooth["settings"]["telea"]["radius"]
    assert on_noise["settings"]["telea"]["radius"] == max(TELEA_RADII) > radius
    fill = classical.telea(test, mask, radius)
    assert on_smooth["baselines"]["telea"] == pytest.approx(masked_psnr(test, fill, mask))


# --- the optional extra, missing ------------------------------------------------------------------

def extra_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if ``aekit[baselines]`` were not installed: importing its modules fails."""
    for module in EXTRA_MODULES:
        monkeypatch.setitem(sys.modules, module, None)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run on 60 smooth 24x24 images (48 to train and validate, 12 to test): every baseline is quick."""
    from aekit.cli import main

    d = tmp_path_factory.mktemp("classical")
    np.save(d / "x.npy", smooth(60, seed=11))
    assert main(["train", "--data", f"npy:{d / 'x.npy'}", "--layers", "16", "--code", "4", "--epochs", "1",
                 "--max-steps", "1", "--quiet", "--out", str(d / "run")]) == 0
    return d / "run"


def test_without_the_extra_denoise_says_in_one_line_what_it_skipped_and_runs_the_rest(tiny_run, capsys,
                                                                                      monkeypatch) -> None:
    extra_missing(monkeypatch)
    rc, out, err = run_cli(["denoise", tiny_run, "--noise", "gaussian:0.1", "--json"], capsys)
    assert rc == 0, err
    assert err.strip().splitlines() == [
        "bm3d, nl_means, total_variation skipped (bm3d, scikit-image not installed): pip install 'aekit[baselines]'"]
    r = json.loads(out)
    assert list(r["baselines"]) == ["median3x3", "median", "gaussian_blur", "pca_projection"]
    assert r["skipped"] == {"bm3d": "bm3d", "nl_means": "scikit-image", "total_variation": "scikit-image"}
    assert r["best_baseline"] in r["baselines"]
    rc, out, err = run_cli(["denoise", tiny_run, "--noise", "gaussian:0.1"], capsys)  # the text output too
    assert rc == 0 and "skipped" in err and "median3x3" in out and "bm3d" not in out


def test_without_the_extra_inpaint_says_in_one_line_what_it_skipped_and_runs_the_rest(tiny_run, capsys,
                                                                                      monkeypatch) -> None:
    extra_missing(monkeypatch)
    rc, out, err = run_cli(["inpaint", tiny_run, "--mask", "center:8", "--iters", "1", "--json"], capsys)
    assert rc == 0, err
    assert err.strip().splitlines() == [
        "biharmonic, telea skipped (scikit-image, opencv-python-headless not installed): pip install "
        "'aekit[baselines]'"]
    r = json.loads(out)
    assert list(r["baselines"]) == ["mean_image", "nearest_observed"] and set(r["skipped"]) == {"biharmonic", "telea"}


def test_without_the_extra_a_baseline_asked_for_by_name_is_one_error_line(tiny_run, capsys, monkeypatch) -> None:
    from tests.badinput import assert_one_line_error

    extra_missing(monkeypatch)
    assert_one_line_error(["denoise", tiny_run, "--noise", "gaussian:0.1", "--baselines", "median,bm3d"], capsys,
                          "bm3d cannot run (bm3d not installed): pip install 'aekit[baselines]'")
    assert_one_line_error(["inpaint", tiny_run, "--mask", "center:8", "--baselines", "telea"], capsys,
                          "telea cannot run (opencv-python-headless not installed)")


def test_pick_without_the_extra(monkeypatch) -> None:
    from aekit.tasks.denoise import DENOISERS

    extra_missing(monkeypatch)
    image_only = set(DENOISERS) - {"pca_projection"}
    assert classical.pick(None, DENOISERS, image_only, True, "denoising") == (
        ["median3x3", "median", "gaussian_blur", "pca_projection"],
        {"bm3d": "bm3d", "nl_means": "scikit-image", "total_variation": "scikit-image"})
    assert classical.pick("all", DENOISERS, image_only, False, "denoising") == (["pca_projection"], {})
    with pytest.raises(AekitError, match="needs images"):
        classical.pick(["median"], DENOISERS, image_only, False, "denoising")


# --- the command line names every baseline ----------------------------------------------------------

def test_denoise_json_names_every_baseline_with_its_setting_and_time(tiny_run, capsys) -> None:
    rc, out, err = run_cli(["denoise", tiny_run, "--noise", "gaussian:0.1", "--json"], capsys)
    assert rc == 0 and err == ""
    r = json.loads(out)
    assert list(r["baselines"]) == ["median3x3", "median", "gaussian_blur", "pca_projection", "bm3d", "nl_means",
                                    "total_variation"]
    assert r["skipped"] == {} and set(r["seconds"]) == set(r["baselines"])
    settings = {name: set(b) - {"psnr"} for name, b in r["baselines"].items()}
    assert settings == {"median3x3": set(), "median": {"window"}, "gaussian_blur": {"sigma"}, "pca_projection": {"k"},
                        "bm3d": {"sigma"}, "nl_means": {"h"}, "total_variation": {"weight"}}
    assert all(b["psnr"] > r["psnr_noisy"] for name, b in r["baselines"].items() if name != "pca_projection")
    # (these images span 4 dimensions, so the PCA projection is the best baseline here)
    assert r["best_baseline"] == max(r["baselines"], key=lambda n: r["baselines"][n]["psnr"])
    rc, out, _ = run_cli(["denoise", tiny_run, "--noise", "salt-pepper:0.1", "--baselines", "median,bm3d"], capsys)
    assert rc == 0 and "window" in out and "bm3d" in out and "nl_means" not in out


def test_inpaint_json_names_every_baseline(tiny_run, capsys) -> None:
    rc, out, err = run_cli(["inpaint", tiny_run, "--mask", "center:8", "--iters", "1", "--json"], capsys)
    assert rc == 0 and err == ""
    r = json.loads(out)
    assert list(r["baselines"]) == ["mean_image", "nearest_observed", "biharmonic", "telea"] and r["skipped"] == {}
    assert set(r["settings"]) == {"telea"} and set(r["seconds"]) == set(r["baselines"])
    assert r["best_baseline"] == "biharmonic"
    rc, out, _ = run_cli(["inpaint", tiny_run, "--mask", "center:24", "--iters", "1", "--json"], capsys)
    assert rc == 0 and list(json.loads(out)["baselines"]) == ["mean_image", "nearest_observed"]  # nothing observed
