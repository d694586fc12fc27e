"""Shipped MNIST, the full-MNIST switch, damaged files, sharding and images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dlscale import data
from dlscale.data import DataError, load_image, load_mnist, shard


@pytest.fixture
def no_full_mnist(monkeypatch):
    monkeypatch.setattr(data, "MNIST_FULL_PLACES", ())


def test_shipped_mnist_is_real_balanced_digits(no_full_mnist, capsys):
    mnist = load_mnist()
    assert "shipped 10k subset" in capsys.readouterr().out
    assert mnist.x_train.shape == (8000, 28, 28) and mnist.x_test.shape == (2000, 28, 28)
    assert mnist.x_train.dtype == np.uint8 and mnist.y_train.dtype == np.uint8
    for y in (mnist.y_train, mnist.y_test):
        counts = np.bincount(y, minlength=10)
        assert counts.min() > 0.08 * len(y) and counts.max() < 0.13 * len(y)  # MNIST's own balance
    # Real handwriting: dark background, bright strokes covering roughly a fifth of the image.
    ink = (mnist.x_train > 127).mean()
    assert 0.08 < ink < 0.25 and mnist.x_train.max() == 255
    # Train and test are disjoint.
    train = {x.tobytes() for x in mnist.x_train}
    assert not any(x.tobytes() in train for x in mnist.x_test)


def test_full_mnist_is_used_when_present(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    full = tmp_path / "mnist.npz"
    np.savez_compressed(full, x_train=rng.integers(0, 256, (60, 28, 28), np.uint8),
                        y_train=np.arange(60, dtype=np.uint8) % 10,
                        x_test=rng.integers(0, 256, (10, 28, 28), np.uint8),
                        y_test=np.arange(10, dtype=np.uint8))
    monkeypatch.setattr(data, "MNIST_FULL_PLACES", (tmp_path / "absent.npz", full))
    monkeypatch.setattr(data, "MNIST_FULL_SHA256", data.sha256(full))
    mnist = load_mnist()
    assert "full MNIST file mnist.npz" in capsys.readouterr().out
    assert len(mnist.x_train) == 60
    assert len(load_mnist(prefer_full=False, verbose=False).x_train) == 8000


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_subset_gives_one_clear_error(tmp_path, monkeypatch, no_full_mnist, damage):
    blob = bytearray(data.MNIST_SUBSET.read_bytes())
    if damage == "truncate":
        blob = blob[: len(blob) // 2]
    else:
        blob[5000] ^= 0xFF
    copy = tmp_path / "mnist-10k.npz"
    copy.write_bytes(bytes(blob))
    monkeypatch.setattr(data, "MNIST_SUBSET", copy)
    with pytest.raises(DataError, match=r"mnist-10k.npz is damaged.*Fix: restore the shipped file"):
        load_mnist()


def test_unreadable_full_file_names_the_file(tmp_path, monkeypatch):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"not a zip file")
    monkeypatch.setattr(data, "MNIST_FULL_PLACES", (bad,))
    monkeypatch.setattr(data, "MNIST_FULL_SHA256", data.sha256(bad))
    with pytest.raises(DataError, match=r"mnist.npz is not a readable MNIST file.*Fix: delete"):
        load_mnist()


@pytest.mark.parametrize(("n", "size"), [(10, 3), (8000, 4), (7, 7), (1001, 2)])
def test_shards_are_disjoint_balanced_and_complete(n, size):
    parts = [range(n)[shard(n, rank, size)] for rank in range(size)]
    assert sorted(i for part in parts for i in part) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_a_rank_without_a_batch_is_refused():
    with pytest.raises(ValueError, match="leaves a rank only 16.*use fewer ranks"):
        shard(64, 0, 4, min_items=32)
    with pytest.raises(ValueError, match="rank must be in 0..1"):
        shard(10, 2, 2)


def test_sample_photos_load_as_rgb():
    for name in data.SAMPLE_IMAGES:
        image = load_image(name)
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_learner_images_are_converted_to_rgb(tmp_path, mode):
    path = tmp_path / f"photo_{mode}.png"
    Image.new(mode, (31, 17), color=200 if mode in ("L", "P") else (10, 20, 30, 128)).save(path)
    image = load_image(path)
    assert image.shape == (17, 31, 3) and image.dtype == np.uint8


def test_unreadable_image_gives_a_clear_error(tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_text("this is not a photo")
    with pytest.raises(DataError, match="cannot read .*junk.jpg as an image"):
        load_image(junk)
    with pytest.raises(DataError, match="no image file"):
        load_image(tmp_path / "absent.png")


def test_smoke_sized_images_are_small_but_keep_their_shape():
    from dlscale.data import smoke_sized

    photo = load_image("china.jpg")
    small = smoke_sized(photo)
    assert small.shape[0] * small.shape[1] <= 20_000 and small.shape[2] == 3
    tiny = photo[:50, :50]
    assert smoke_sized(tiny) is tiny
