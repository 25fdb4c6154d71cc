"""Checks on the full MNIST files beside the checkout (a few seconds each)."""

import pytest

from aekit.api import baseline_pca


@pytest.mark.slow
def test_pca30_matches_hinton_and_salakhutdinov(mnist_dir):
    m = baseline_pca(30, "mnist", str(mnist_dir))
    assert m["n"] == 10000
    assert m["sse_per_image"] == pytest.approx(13.87, abs=0.01)


@pytest.mark.slow
def test_full_mnist_reads_both_splits(mnist_dir):
    import numpy as np

    from aekit.data.sources import load_dataset

    ds = load_dataset("mnist", mnist_dir)
    assert len(ds.train) == 60000 and len(ds.test) == 10000
    assert np.bincount(ds.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
