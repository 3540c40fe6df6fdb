"""Robustness: generated corruptions against float64 references, the official CIFAR-C file layout, FGSM
and PGD on a trained tiny model, and robustness.json from the CLI."""

import colorsys
import hashlib
import json
import socket
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from orthoreg.robustness import (
    AttackSpec,
    RobustnessSettings,
    accuracy,
    adversarial_accuracy,
    attack_plan,
    available_corruptions,
    corrupt,
    download_cifar_c,
    fgsm,
    install_archive,
    load_official,
    mean_corruption_accuracy,
    official_folder,
    pgd,
    robustness_report,
)
from orthoreg.robustness import corruptions as C

CPU = torch.device("cpu")
REQUIRED_GENERATED = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "gaussian_blur",
    "defocus_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors run faster on one thread, and much faster when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_images(n=4, channels=3, size=32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 256, (n, channels, size, size), generator=generator, dtype=torch.uint8).float() / 255
    )


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- generated corruptions


def test_generated_corruptions_cover_the_required_set():
    assert set(REQUIRED_GENERATED) <= set(available_corruptions())


@pytest.mark.parametrize("name", available_corruptions())
@pytest.mark.parametrize("channels", [1, 3])
def test_corruption_output_is_an_8bit_image_and_deterministic(name, channels):
    x = random_images(channels=channels)
    for severity in C.SEVERITIES:
        out = corrupt(x, name, severity, seeded(7))
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 1
        assert torch.equal(out * 255, (out * 255).round())
        assert torch.equal(out, corrupt(x, name, severity, seeded(7)))
        assert not torch.equal(out, x), f"{name} severity {severity} left the images unchanged"


@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"])
def test_noise_depends_on_the_generator(name):
    x = random_images()
    assert not torch.equal(corrupt(x, name, 3, seeded(1)), corrupt(x, name, 3, seeded(2)))


def test_gaussian_noise_has_the_cifar_c_standard_deviations():
    grey = torch.full((64, 3, 32, 32), 128 / 255)  # far from the clip at 0 and 1 for std <= 0.1
    for severity, std in zip(C.SEVERITIES, (0.04, 0.06, 0.08, 0.09, 0.10), strict=True):
        measured = (corrupt(grey, "gaussian_noise", severity, seeded(severity)) - grey).std().item()
        assert abs(measured - std) < 0.01 * std + 0.3 / 255  # sampling error plus 8-bit rounding


def test_shot_noise_is_poisson_counts_over_photons():
    grey = torch.full((64, 3, 32, 32), 102 / 255)
    for severity, photons in zip(C.SEVERITIES, (500, 250, 100, 75, 50), strict=True):
        out = corrupt(grey, "shot_noise", severity, seeded(severity)).double()
        assert abs(out.mean().item() - 102 / 255) < 0.01
        expected_std = (102 / 255 / photons) ** 0.5
        assert abs(out.std().item() - expected_std) < 0.05 * expected_std + 0.3 / 255


def test_impulse_noise_replaces_the_cifar_c_fraction_by_0_or_1():
    grey = torch.full((64, 3, 32, 32), 128 / 255)
    for severity, amount in zip(C.SEVERITIES, (0.01, 0.02, 0.03, 0.05, 0.07), strict=True):
        out = corrupt(grey, "impulse_noise", severity, seeded(severity))
        changed = out != grey
        assert set(out[changed].unique().tolist()) <= {0.0, 1.0}
        assert abs(changed.double().mean().item() - amount) < 0.15 * amount
        assert abs((out[changed] == 1).double().mean().item() - 0.5) < 0.1


def numpy_filter(image, kernel, pad_mode):
    """Correlate each channel of a (C, H, W) float64 array with a 2-D kernel, by explicit sums."""
    radius = kernel.shape[0] // 2
    padded = np.pad(image, ((0, 0), (radius, radius), (radius, radius)), mode=pad_mode)
    out = np.zeros_like(image)
    height, width = image.shape[1:]
    for dy in range(kernel.shape[0]):
        for dx in range(kernel.shape[1]):
            out += kernel[dy, dx] * padded[:, dy : dy + height, dx : dx + width]
    return out


def assert_on_grid_near(out, expected):
    """out is `expected` clipped to [0, 1] and rounded to the 8-bit grid (up to float32 error)."""
    assert np.abs(np.asarray(out, np.float64) - np.clip(expected, 0, 1)).max() <= 0.5 / 255 + 1e-5


def test_gaussian_blur_matches_a_float64_gaussian_filter_with_repeated_edges():
    x = random_images(n=2)
    for severity, sigma in zip(C.SEVERITIES, (0.4, 0.6, 0.7, 0.8, 1.0), strict=True):
        radius = int(4 * sigma + 0.5)
        t = np.arange(-radius, radius + 1)
        g = np.exp(-(t**2) / (2 * sigma**2))
        kernel = np.outer(g, g) / np.outer(g, g).sum()
        expected = np.stack([numpy_filter(image, kernel, "edge") for image in x.double().numpy()])
        out = corrupt(x, "gaussian_blur", severity, seeded()).double().numpy()
        assert_on_grid_near(out, expected)


def test_defocus_blur_matches_the_antialiased_disk_with_mirrored_edges():
    x = random_images(n=2)
    constants = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))
    for severity, (radius, alias) in zip(C.SEVERITIES, constants, strict=True):
        t = np.arange(-8, 9)
        disk = ((t[None, :] ** 2 + t[:, None] ** 2) <= radius**2).astype(np.float64)
        disk /= disk.sum()
        g = np.exp(-(np.arange(-1, 2) ** 2) / (2 * alias**2))
        g /= g.sum()
        kernel = numpy_filter(disk[None], np.outer(g, g), "reflect")[0]
        expected = np.stack([numpy_filter(image, kernel, "reflect") for image in x.double().numpy()])
        out = corrupt(x, "defocus_blur", severity, seeded()).double().numpy()
        assert_on_grid_near(out, expected)


def test_brightness_shifts_the_hsv_value_like_colorsys():
    x = random_images(n=1, size=8)
    x[0, :, 0, 0] = 0.0  # a black pixel: value 0, no hue
    for severity, shift in zip(C.SEVERITIES, (0.05, 0.1, 0.15, 0.2, 0.3), strict=True):
        out = corrupt(x, "brightness", severity, seeded())[0]
        for i in range(8):
            for j in range(8):
                h, s, v = colorsys.rgb_to_hsv(*x[0, :, i, j].double().tolist())
                expected = colorsys.hsv_to_rgb(h, s, min(v + shift, 1.0))
                assert_on_grid_near(out[:, i, j].double().numpy(), np.array(expected))


def test_brightness_of_a_grey_image_adds_the_shift():
    x = random_images(n=2, channels=1)
    for severity, shift in zip(C.SEVERITIES, (0.05, 0.1, 0.15, 0.2, 0.3), strict=True):
        assert_on_grid_near(corrupt(x, "brightness", severity, seeded()).numpy(), x.double().numpy() + shift)


def test_contrast_pulls_each_channel_to_its_mean():
    x = random_images(n=2)
    array = x.double().numpy()
    for severity, factor in zip(C.SEVERITIES, (0.75, 0.5, 0.4, 0.3, 0.15), strict=True):
        means = array.mean(axis=(2, 3), keepdims=True)
        out = corrupt(x, "contrast", severity, seeded()).double().numpy()
        assert_on_grid_near(out, (array - means) * factor + means)


def test_pixelate_is_a_box_resize_down_and_up_of_each_image():
    x = random_images(n=2, size=32)
    for severity, factor in zip(C.SEVERITIES, (0.95, 0.9, 0.85, 0.75, 0.65), strict=True):
        out = corrupt(x, "pixelate", severity, seeded())
        for index in range(2):
            pixels = (x[index].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            small = int(32 * factor)
            expected = Image.fromarray(pixels).resize((small, small), Image.BOX).resize((32, 32), Image.BOX)
            assert np.array_equal((out[index].permute(1, 2, 0).numpy() * 255).round(), np.asarray(expected))


def test_jpeg_error_grows_as_quality_drops():
    x = random_images(n=8)
    errors = [(corrupt(x, "jpeg_compression", s, seeded()) - x).abs().mean().item() for s in C.SEVERITIES]
    assert errors[0] > 0.01
    assert errors[-1] > errors[0]
    flat = torch.full((1, 3, 32, 32), 102 / 255)  # a flat colour survives JPEG up to rounding
    assert (corrupt(flat, "jpeg_compression", 5, seeded()) - flat).abs().max() <= 2 / 255


def test_unknown_corruption_and_severity_are_rejected_with_the_valid_ones():
    x = random_images(n=1)
    with pytest.raises(ValueError, match="fog.*valid: gaussian_noise"):
        corrupt(x, "fog", 1, seeded())
    with pytest.raises(ValueError, match="severity"):
        corrupt(x, "contrast", 6, seeded())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        corrupt(x * 255, "contrast", 1, seeded())


# ---------------------------------------------------------------- official CIFAR-C files


def linear_model(seed=0, classes=10, size=32):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, classes)).eval()


def reference_predictions(model, images_nhwc):
    """argmax(W x + b) in float64 numpy on (N, H, W, C) uint8 images."""
    weight = model[1].weight.detach().double().numpy()
    bias = model[1].bias.detach().double().numpy()
    flat = images_nhwc.transpose(0, 3, 1, 2).reshape(len(images_nhwc), -1) / 255.0
    return (flat @ weight.T + bias).argmax(1)


@pytest.fixture
def cifar_c_root(tmp_path):
    """A CIFAR-10-C folder in the real layout: (5 * 20, 32, 32, 3) uint8 per corruption + labels.npy."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar_c" / "CIFAR-10-C"
    folder.mkdir(parents=True)
    np.save(folder / "labels.npy", rng.integers(0, 10, 100).astype(np.uint8))
    for name in ("gaussian_noise", "contrast", "fog"):
        images = rng.integers(0, 256, (100, 32, 32, 3)).astype(np.uint8)
        images[:, 0, 0, 0] = np.repeat(np.arange(1, 6), 20)  # the severity, to check which block is read
        np.save(folder / f"{name}.npy", images)
    return tmp_path / "cifar_c"


def test_load_official_reads_the_block_of_one_severity(cifar_c_root):
    folder = official_folder(cifar_c_root, "cifar10")
    assert folder == cifar_c_root / "CIFAR-10-C"
    assert official_folder(cifar_c_root, "cifar100") is None
    assert official_folder(cifar_c_root, "fashion_mnist") is None
    all_labels = np.load(folder / "labels.npy")
    for severity in (1, 3, 5):
        images, labels = load_official(folder, "contrast", severity, limit=12)
        assert images.shape == (12, 3, 32, 32) and images.dtype == torch.uint8
        assert labels.dtype == torch.int64
        assert (images[:, 0, 0, 0] == severity).all()
        assert labels.tolist() == all_labels[(severity - 1) * 20 : (severity - 1) * 20 + 12].tolist()
    assert load_official(folder, "contrast", 2)[0].shape[0] == 20
    with pytest.raises(FileNotFoundError, match="present: gaussian_noise, fog, contrast"):
        load_official(folder, "snow", 1)


def test_load_official_refuses_a_wrong_layout(tmp_path):
    np.save(tmp_path / "labels.npy", np.zeros(99, np.uint8))
    np.save(tmp_path / "contrast.npy", np.zeros((99, 32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="5 \\* n"):
        load_official(tmp_path, "contrast", 1)


def test_official_records_are_accuracies_on_the_files(cifar_c_root):
    folder = official_folder(cifar_c_root, "cifar10")
    model = linear_model()
    clean = torch.randint(0, 256, (12, 3, 32, 32), dtype=torch.uint8, generator=seeded())
    clean_labels = torch.randint(0, 10, (12,), generator=seeded(1))
    settings = RobustnessSettings(
        eps=(0.0,),
        reference_eps=8 / 255,
        pgd_steps=(2,),
        severities=(1, 4),
        corruptions=("gaussian_noise", "contrast"),
        batch_size=5,
    )
    result = robustness_report(model, clean, clean_labels, settings, official=folder, official_limit=12)
    expected_clean = reference_predictions(model, clean.permute(0, 2, 3, 1).numpy()) == clean_labels.numpy()
    assert result["clean_accuracy"] == pytest.approx(expected_clean.mean())
    labels = np.load(folder / "labels.npy")
    assert [(r["corruption"], r["severity"]) for r in result["corruptions"]] == [
        ("gaussian_noise", 1),
        ("gaussian_noise", 4),
        ("contrast", 1),
        ("contrast", 4),
    ]
    for record in result["corruptions"]:
        start = (record["severity"] - 1) * 20
        images = np.load(folder / f"{record['corruption']}.npy")[start : start + 12]
        hits = reference_predictions(model, images) == labels[start : start + 12]
        assert record == {
            "source": "official",
            "corruption": record["corruption"],
            "severity": record["severity"],
            "accuracy": pytest.approx(hits.mean()),
            "n": 12,
        }


def test_official_defaults_to_the_benchmark_files_present_and_rejects_others(cifar_c_root):
    folder = official_folder(cifar_c_root, "cifar10")
    model = linear_model()
    clean = torch.zeros((4, 3, 32, 32), dtype=torch.uint8)
    settings = RobustnessSettings(eps=(0.0,), pgd_steps=(1,), severities=(1,))
    result = robustness_report(model, clean, torch.zeros(4, dtype=torch.int64), settings, official=folder)
    assert [r["corruption"] for r in result["corruptions"]] == ["gaussian_noise", "fog", "contrast"]
    bad = RobustnessSettings(corruptions=("pixelate",))
    with pytest.raises(ValueError, match="'pixelate'.*valid.*gaussian_noise, fog, contrast"):
        robustness_report(model, clean, torch.zeros(4, dtype=torch.int64), bad, official=folder)


def make_tar(tmp_path, folder_name="CIFAR-10-C"):
    source = tmp_path / "source" / folder_name
    source.mkdir(parents=True)
    np.save(source / "labels.npy", np.arange(10, dtype=np.uint8).repeat(5))
    np.save(source / "contrast.npy", np.zeros((50, 32, 32, 3), np.uint8))
    tar_path = tmp_path / "archive.tar"
    with tarfile.open(tar_path, "w") as tar:
        tar.add(source, arcname=folder_name)
    return tar_path, hashlib.md5(tar_path.read_bytes()).hexdigest()


def test_install_archive_checks_the_md5_before_extracting(tmp_path):
    tar_path, md5 = make_tar(tmp_path)
    root = tmp_path / "cifar_c"
    with pytest.raises(ValueError, match="does not match the published 56bf5dcef84df0e2308c6dcbcbbd8499"):
        install_archive(tar_path, root, "cifar10")
    assert not root.exists()  # nothing was extracted
    killed = root / f".CIFAR-10-C.{2**22 + 1}@{socket.gethostname()}.abcdefgh.tmp"  # a SIGKILLed extraction's
    (killed / "CIFAR-10-C").mkdir(parents=True)
    folder = install_archive(tar_path, root, "cifar10", md5=md5)
    assert folder == root / "CIFAR-10-C" and official_folder(root, "cifar10") == folder
    assert load_official(folder, "contrast", 5)[1].tolist() == [8] * 5 + [9] * 5
    assert sorted(p.name for p in root.iterdir()) == [
        "CIFAR-10-C"
    ]  # no staging folder left, nor the killed one


def test_download_fetches_verifies_and_extracts_once(tmp_path):
    tar_path, md5 = make_tar(tmp_path, "CIFAR-100-C")
    root = tmp_path / "cifar_c"
    folder = download_cifar_c("cifar100", root, url=tar_path.as_uri(), md5=md5)
    assert folder == root / "CIFAR-100-C" and (folder / "contrast.npy").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["CIFAR-100-C"]  # the partial tar is removed
    tar_path.unlink()  # already present: nothing is fetched again
    assert download_cifar_c("cifar100", root, url=tar_path.as_uri(), md5=md5) == folder
    with pytest.raises(ValueError, match="MD5"):
        download_cifar_c("cifar10", root, url=make_tar(tmp_path / "other")[0].as_uri())
    with pytest.raises(ValueError, match="official: cifar10, cifar100"):
        download_cifar_c("fashion_mnist", root)


# ---------------------------------------------------------------- aggregation


def test_means_keep_official_and_generated_apart():
    records = [
        {"source": "official", "corruption": "contrast", "severity": 1, "accuracy": 0.9, "n": 10},
        {"source": "official", "corruption": "fog", "severity": 1, "accuracy": 0.7, "n": 10},
        {"source": "official", "corruption": "contrast", "severity": 5, "accuracy": 0.2, "n": 10},
        {"source": "generated", "corruption": "contrast", "severity": 1, "accuracy": 0.5, "n": 10},
        {"source": "generated", "corruption": "contrast", "severity": 5, "accuracy": 0.1, "n": 10},
    ]
    means = mean_corruption_accuracy(records)
    assert set(means) == {"official", "generated"}
    assert means["official"] == {1: pytest.approx(0.8), 5: pytest.approx(0.2), "all": pytest.approx(0.6)}
    assert means["generated"] == {1: pytest.approx(0.5), 5: pytest.approx(0.1), "all": pytest.approx(0.3)}
    with pytest.raises(ValueError, match="'mixed'.*official, generated"):
        mean_corruption_accuracy([{**records[0], "source": "mixed"}])


# ---------------------------------------------------------------- attacks


class Standardize(nn.Module):
    """The normalisation inside the model, as in the engine's Sequential(Normalize, net)."""

    def forward(self, x):
        return (x - 0.5) / 0.25


def quadrant_data(n, generator, signal=0.1):
    """4 classes of noisy 3x8x8 images, class k brighter in quadrant k: separable, but not by 8/255."""
    labels = torch.randint(0, 4, (n,), generator=generator)
    x = 0.5 + 0.12 * torch.randn(n, 3, 8, 8, generator=generator)
    for k in range(4):
        row, col = divmod(k, 2)
        x[labels == k, :, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4] += signal
    return (x.clamp(0, 1) * 255).round().to(torch.uint8), labels


@pytest.fixture(scope="module")
def trained():
    """A small conv net trained 200 Adam steps on the quadrant task; its test split."""
    generator = torch.Generator().manual_seed(0)
    train_x, train_y = quadrant_data(2048, generator)
    test_x, test_y = quadrant_data(256, generator)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )
    model = nn.Sequential(Standardize(), net)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        index = torch.randint(0, 2048, (64,), generator=generator)
        loss = F.cross_entropy(model(train_x[index].float() / 255), train_y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), test_x, test_y


def test_the_trained_model_learned_the_task(trained):
    model, images, labels = trained
    assert accuracy(model, images, labels, batch_size=100, device=CPU) > 0.9


def test_eps_zero_attacks_give_the_clean_images_and_accuracy(trained):
    model, images, labels = trained
    x = images.float() / 255
    assert torch.equal(fgsm(model, x, labels, 0.0), x)
    assert torch.equal(pgd(model, x, labels, 0.0, step_size=2 / 255, steps=5, generator=seeded()), x)
    clean = accuracy(model, images, labels, batch_size=100, device=CPU)
    for spec in (AttackSpec("fgsm", 0.0, 1, 0.0, False), AttackSpec("pgd", 0.0, 10, 2 / 255, True)):
        assert adversarial_accuracy(model, images, labels, spec, batch_size=100, device=CPU, seed=0) == clean


@pytest.mark.parametrize("eps", [2 / 255, 8 / 255, 16 / 255])
def test_adversarial_examples_stay_in_the_eps_ball_and_the_unit_box(trained, eps):
    model, images, labels = trained
    x = images.float() / 255
    x[:, :, 0, 0], x[:, :, 7, 7] = 0.0, 1.0  # pixels on the box faces, where clipping must act
    for adversarial in (
        fgsm(model, x, labels, eps),
        pgd(model, x, labels, eps, step_size=2 / 255, steps=10, generator=seeded()),
        pgd(model, x, labels, eps, step_size=2 / 255, steps=3, random_start=False),
    ):
        assert (adversarial - x).abs().max() <= eps + 1e-6
        assert adversarial.min() >= 0 and adversarial.max() <= 1
        assert not torch.equal(adversarial, x)


def test_pgd_is_at_least_as_strong_as_fgsm_and_both_beat_clean(trained):
    model, images, labels = trained
    clean = accuracy(model, images, labels, batch_size=100, device=CPU)
    eps = 8 / 255
    fgsm_accuracy = adversarial_accuracy(
        model, images, labels, AttackSpec("fgsm", eps, 1, eps, False), batch_size=100, device=CPU, seed=0
    )
    for steps in (10, 20):
        pgd_accuracy = adversarial_accuracy(
            model,
            images,
            labels,
            AttackSpec("pgd", eps, steps, 2 / 255, True),
            batch_size=100,
            device=CPU,
            seed=0,
        )
        assert pgd_accuracy <= fgsm_accuracy
    assert fgsm_accuracy < clean - 0.1


def test_attacks_are_deterministic_for_a_seed(trained):
    model, images, labels = trained
    x = images[:64].float() / 255
    first = pgd(model, x, labels[:64], 8 / 255, step_size=2 / 255, steps=3, generator=seeded(5))
    assert torch.equal(
        first, pgd(model, x, labels[:64], 8 / 255, step_size=2 / 255, steps=3, generator=seeded(5))
    )
    assert not torch.equal(
        first, pgd(model, x, labels[:64], 8 / 255, step_size=2 / 255, steps=3, generator=seeded(6))
    )


def test_attack_input_errors(trained):
    model, images, labels = trained
    x = images[:4].float() / 255
    with pytest.raises(ValueError, match="eps must be"):
        fgsm(model, x, labels[:4], -1 / 255)
    with pytest.raises(ValueError, match="eps must be"):
        pgd(model, x, labels[:4], float("nan"), step_size=2 / 255, steps=1)
    with pytest.raises(ValueError, match="steps >= 1"):
        pgd(model, x, labels[:4], 8 / 255, step_size=2 / 255, steps=0)
    with pytest.raises(ValueError, match="unknown attack 'cw'; available: fgsm, pgd"):
        AttackSpec("cw", 8 / 255, 1, 8 / 255, False)
    model.train()
    try:
        with pytest.raises(ValueError, match="eval"):
            fgsm(model, x, labels[:4], 8 / 255)
    finally:
        model.eval()


def test_settings_reject_bad_values_before_any_work():
    for bad, match in (
        ({"eps": (0.0, -0.1)}, "eps must be"),
        ({"pgd_steps": ()}, "pgd_steps"),
        ({"severities": (0,)}, "severities"),
        ({"step_size": 0.0}, "step_size"),
        ({"batch_size": 0}, "batch_size"),
    ):
        with pytest.raises(ValueError, match=match):
            RobustnessSettings(**bad).check()


def test_attack_plan_sweeps_fgsm_and_the_shortest_pgd_and_runs_every_pgd_at_the_reference():
    settings = RobustnessSettings(eps=(0.0, 0.03137255, 2 / 255), pgd_steps=(20, 10), reference_eps=8 / 255)
    plan = [(s.attack, round(255 * s.eps, 4), s.steps) for s in attack_plan(settings)]
    assert plan == [
        ("fgsm", 0, 1),
        ("pgd", 0, 10),
        ("fgsm", 2, 1),
        ("pgd", 2, 10),
        ("fgsm", 8, 1),
        ("pgd", 8, 10),
        ("pgd", 8, 20),
    ]
    fgsm_spec = attack_plan(settings)[0]
    assert fgsm_spec.step_size == fgsm_spec.eps and not fgsm_spec.random_start


def test_generated_report_has_the_contract_fields_and_repeats_exactly(trained):
    model, images, labels = trained
    settings = RobustnessSettings(
        eps=(0.0, 8 / 255),
        pgd_steps=(3,),
        severities=(1, 5),
        corruptions=("gaussian_noise", "contrast"),
        seed=3,
        batch_size=100,
    )
    result = robustness_report(model, images, labels, settings)
    assert set(result) == {"clean_accuracy", "n", "seed", "forward_dtype", "corruptions", "adversarial"}
    assert result["forward_dtype"] == "fp32"
    assert result["n"] == 256 and result["seed"] == 3
    assert result["clean_accuracy"] == accuracy(model, images, labels, batch_size=256, device=CPU)
    assert {(r["corruption"], r["severity"]) for r in result["corruptions"]} == {
        ("gaussian_noise", 1),
        ("gaussian_noise", 5),
        ("contrast", 1),
        ("contrast", 5),
    }
    assert all(
        r["source"] == "generated" and r["n"] == 256 and 0 <= r["accuracy"] <= 1
        for r in result["corruptions"]
    )
    for record in result["adversarial"]:
        assert set(record) == {"attack", "steps", "step_size", "eps", "accuracy", "n", "random_start"}
    at_zero = [r["accuracy"] for r in result["adversarial"] if r["eps"] == 0]
    assert at_zero == [result["clean_accuracy"]] * 2
    assert robustness_report(model, images, labels, settings) == result
    json.dumps(result, allow_nan=False)


def test_generated_records_do_not_depend_on_which_others_are_asked_for(trained):
    model, images, labels = trained
    both = RobustnessSettings(
        eps=(0.0,), pgd_steps=(1,), severities=(2,), corruptions=("contrast", "shot_noise")
    )
    alone = RobustnessSettings(eps=(0.0,), pgd_steps=(1,), severities=(2,), corruptions=("shot_noise",))
    pick = lambda result: [r for r in result["corruptions"] if r["corruption"] == "shot_noise"]  # noqa: E731
    assert pick(robustness_report(model, images, labels, both)) == pick(
        robustness_report(model, images, labels, alone)
    )


# ---------------------------------------------------------------- the CLI on a real run directory


def test_cli_writes_robustness_json(tmp_path, capsys, untrained_run):
    from orthoreg.cli import main

    run_dir = tmp_path / "run"
    untrained_run(run_dir, tmp_path / "data")
    code = main(
        [
            "robustness",
            "--run",
            str(run_dir),
            "--data-dir",
            str(tmp_path / "data"),
            "--limit",
            "40",
            "--eps",
            "0",
            "8/255",
            "--pgd-steps",
            "2",
            "4",
            "--severities",
            "1",
            "5",
            "--corruptions",
            "contrast",
            "pixelate",
            "--cifar-c-dir",
            str(tmp_path / "absent"),
            "--device",
            "cpu",
            "--seed",
            "1",
        ]
    )
    assert code == 0
    result = json.loads((run_dir / "robustness.json").read_text())
    assert result["n"] == 40 and result["seed"] == 1 and 0 <= result["clean_accuracy"] <= 1
    assert [(r["source"], r["corruption"], r["severity"]) for r in result["corruptions"]] == [
        ("generated", "contrast", 1),
        ("generated", "contrast", 5),
        ("generated", "pixelate", 1),
        ("generated", "pixelate", 5),
    ]
    assert [(r["attack"], round(255 * r["eps"]), r["steps"]) for r in result["adversarial"]] == [
        ("fgsm", 0, 1),
        ("pgd", 0, 2),
        ("fgsm", 8, 1),
        ("pgd", 8, 2),
        ("pgd", 8, 4),
    ]
    provenance = result["provenance"]
    assert provenance["cpu"]["model"] and provenance["wall_seconds"] > 0 and provenance["cpu_seconds"] > 0
    assert not list(run_dir.glob(".robustness.json.*"))
    assert "no official CIFAR-C files" in capsys.readouterr().out


def test_cli_rejects_unknown_corruptions_and_negative_eps_before_work(tmp_path, capsys, untrained_run):
    from orthoreg.cli import main

    run_dir = tmp_path / "run"
    untrained_run(run_dir, tmp_path / "data")
    common = ["robustness", "--run", str(run_dir), "--data-dir", str(tmp_path / "data"), "--device", "cpu"]
    assert main([*common, "--corruptions", "snow"]) == 2
    assert "'snow'" in capsys.readouterr().err
    assert main([*common, "--eps=-0.03"]) == 2
    assert "eps must be" in capsys.readouterr().err
    assert main([*common, "--download"]) == 2
    assert "--download needs --cifar-c-dir" in capsys.readouterr().err
    assert not (run_dir / "robustness.json").exists()
