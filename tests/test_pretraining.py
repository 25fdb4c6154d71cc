import json

import numpy as np
import pytest
import torch

import aekit
from aekit.errors import AekitError
from aekit.training.classify import Classifier, stratified_subset, train_stage
from tests.test_cli import assert_one_line_error, run

FAST = {"epochs": 1, "batch_size": 64, "lr": 3e-3}
# Enough training that the sigmoid codes are informative (after one epoch they are nearly constant).
USEFUL = {"epochs": 4, "batch_size": 32, "lr": 3e-3}


@pytest.fixture(scope="module")
def greedy_run(tmp_path_factory, mini):
    d = tmp_path_factory.mktemp("pre") / "greedy"
    model, summary = aekit.pretrain([64, 32], "greedy", "masking:0.1,masking:0.2", out=d, dataset=mini, **USEFUL)
    return d, model, summary


def test_greedy_pretraining_records_each_layer(greedy_run, mini):
    d, _, s = greedy_run
    assert [r["layer"] for r in s["per_layer"]] == [1, 2]
    assert [r["noise"] for r in s["per_layer"]] == ["masking:0.1", "masking:0.2"]
    assert all(np.isfinite(r["best_val_loss"]) for r in s["per_layer"])
    saved = json.loads((d / "summary.json").read_text())
    assert saved["per_layer"][1]["size"] == 32 and saved["per_layer"][1]["input"] == 64
    loaded = aekit.load(d)  # an ordinary run directory
    codes = loaded.encode(mini.test.x[:200])
    assert codes.shape == (200, 32) and codes.min() >= 0 and codes.max() <= 1  # sigmoid units
    assert codes.std(0).mean() > 0.05  # informative, not saturated
    assert s["per_layer"][0]["val_mse"] < 0.05  # predicting the mean image scores about 0.067


def test_greedy_layers_copy_the_shallow_autoencoders(mini):
    """Layer 2 of the stack must reproduce a shallow AE trained on layer 1's codes."""
    model, _ = aekit.pretrain([16, 8], "greedy", dataset=mini, **FAST)
    x = mini.test.x[:5]
    l1 = model.encoder[:3](torch.from_numpy(x.astype(np.float32) / 255))
    assert l1.shape == (5, 16)
    full = model.encode(x)
    np.testing.assert_allclose(model.encoder[3:](l1).detach().numpy(), full, atol=1e-6)


def test_end_to_end_pretraining(mini, tmp_path):
    model, s = aekit.pretrain([32, 16], "end-to-end", out=tmp_path / "e2e", dataset=mini, **FAST)
    assert s["mode"] == "end-to-end" and s["per_layer"][0]["layer"] == "all"
    assert model.encode(mini.test.x[:3]).shape == (3, 16)


def test_noise_list_must_match_layers(mini):
    with pytest.raises(AekitError, match="3 noise specs for 2 layers"):
        aekit.pretrain([8, 4], "greedy", "masking:0.1,masking:0.2,masking:0.3", dataset=mini, **FAST)


def test_stratified_seeded_subsets():
    y = np.repeat(np.arange(10), 50)
    a, b = stratified_subset(y, 100, 0), stratified_subset(y, 100, 0)
    np.testing.assert_array_equal(a, b)
    assert np.bincount(y[a]).tolist() == [10] * 10
    assert not np.array_equal(a, stratified_subset(y, 100, 1))
    odd = stratified_subset(y, 105, 0)
    assert len(odd) == 105 and set(np.bincount(y[odd])) <= {10, 11}
    assert len(stratified_subset(y, "all", 0)) == 500
    for bad, msg in [(0, "positive"), (501, "only 500"), (5, "fewer labels than"), ("many", "number or 'all'")]:
        with pytest.raises(AekitError, match=msg):
            stratified_subset(y, bad, 0)


def test_step1_keeps_encoder_frozen(greedy_run, mini):
    _, model, _ = greedy_run
    clf = Classifier(model.encoder, 32, 10)
    before = {k: v.clone() for k, v in clf.encoder.state_dict().items()}
    head_before = clf.head.weight.clone()
    x, y = mini.train.x[:500], mini.train.y[:500]
    train_stage(clf, "top", x, y, x[:100], y[:100], epochs=2, batch_size=64, lr=1e-2, patience=None, seed=0)
    for k, v in clf.encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not torch.equal(clf.head.weight, head_before)
    train_stage(clf, "all", x, y, x[:100], y[:100], epochs=1, batch_size=64, lr=1e-3, patience=None, seed=0)
    assert any(not torch.equal(v, before[k]) for k, v in clf.encoder.state_dict().items())


@pytest.mark.parametrize(("stage", "init"), [("top", "pretrained"), ("all", "pretrained"), ("both", "random")])
def test_finetune_stages_and_inits(greedy_run, stage, init, tmp_path):
    d, _, _ = greedy_run
    s = aekit.finetune(d, labels=300, stage=stage, init=init, out=tmp_path / "clf", epochs=5, batch_size=32,
                       lr=3e-3, patience=None)
    assert s["labels"] == 300 and s["n_val"] == 100 and 0 <= s["test_error_percent"] < 90
    assert [r["stage"] for r in s["stages"]] == (["top", "all"] if stage == "both" else [stage])
    again = aekit.classify(tmp_path / "clf")
    assert again["error_percent"] == pytest.approx(s["test_error_percent"])


def test_cli_pretrain_finetune_classify(capsys, tmp_path):
    pre = str(tmp_path / "pre")
    code, out, _ = run(capsys, "pretrain", "--layers", "32,16", "--mode", "greedy", "--epochs", "1", "--out", pre,
                       "--quiet", "--json")
    assert code == 0 and len(json.loads(out)["per_layer"]) == 2
    code, out, _ = run(capsys, "finetune", pre, "--labels", "200", "--stage", "both", "--epochs", "2",
                       "--out", str(tmp_path / "clf"), "--json")
    assert code == 0 and json.loads(out)["labels"] == 200
    code, out, _ = run(capsys, "classify", str(tmp_path / "clf"), "--data", "mnist-mini", "--json")
    assert code == 0 and json.loads(out)["n"] == 1000


def test_cli_finetune_errors(greedy_run, capsys, tmp_path):
    d, _, _ = greedy_run
    code, _, err = run(capsys, "finetune", str(d), "--labels", "0")
    assert_one_line_error(code, err, "--labels must be a positive")
    code, _, err = run(capsys, "finetune", str(d), "--labels", "999999")
    assert_one_line_error(code, err, "only 5400 labelled")
    np.save(tmp_path / "rows.npy", np.zeros((50, 7), np.float32))
    code, _, err = run(capsys, "finetune", str(d), "--data", f"npy:{tmp_path / 'rows.npy'}")
    assert_one_line_error(code, err, "shape")
    code, _, err = run(capsys, "classify", str(d))
    assert_one_line_error(code, err, "not a classifier run")


def test_small_label_sets_get_enough_steps_per_epoch(greedy_run, mini):
    from aekit.training.classify import MIN_STEPS_PER_EPOCH

    _, model, _ = greedy_run
    clf = Classifier(model.encoder, 32, 10)
    calls = []
    clf.head.register_forward_hook(lambda *_: calls.append(1))
    x, y = mini.train.x[:20], mini.train.y[:20]  # one batch of 64 would hold them all
    train_stage(clf, "top", x, y, x, y, epochs=1, batch_size=64, lr=1e-2, patience=None, seed=0)
    assert len(calls) == MIN_STEPS_PER_EPOCH + 1  # the steps, then one validation pass


def test_random_shift_moves_each_image_within_bounds():
    from aekit.training.classify import random_shift

    x = torch.zeros(64, 1, 12, 12)
    x[:, :, 5, 6] = 1.0  # one lit pixel, far from the border
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), torch.ones(64))
    pos = out[:, 0].flatten(1).argmax(1)
    rows, cols = pos // 12, pos % 12
    assert rows.min() >= 3 and rows.max() <= 7 and cols.min() >= 4 and cols.max() <= 8
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10  # offsets differ per image


def test_finetune_with_dropout_shift_and_cosine_reloads(greedy_run, tmp_path):
    d, _, _ = greedy_run
    s = aekit.finetune(d, labels=300, stage="both", out=tmp_path / "clf", epochs=2, batch_size=32, lr=3e-3,
                       patience=None, dropout=0.3, shift=2, schedule="cosine")
    assert 0 <= s["test_error_percent"] < 90
    from aekit.run import open_run

    run = open_run(tmp_path / "clf")
    model, info = run.model, run.info
    assert info["finetune"]["dropout"] == 0.3 and any(isinstance(m, torch.nn.Dropout) for m in model.encoder)
    assert aekit.classify(tmp_path / "clf")["error_percent"] == pytest.approx(s["test_error_percent"])


def test_cli_finetune_regulariser_errors(greedy_run, capsys):
    d, _, _ = greedy_run
    code, _, err = run(capsys, "finetune", str(d), "--dropout", "1.5")
    assert_one_line_error(code, err, "--dropout must lie in [0, 1)")
    code, _, err = run(capsys, "finetune", str(d), "--shift", "-1")
    assert_one_line_error(code, err, "--shift must be 0 or more")


def test_dropout_of_an_encoder_made_of_one_module_acts_on_its_code():
    """A VAE's encoder is one module (its posterior mean), not a stack of layers: --dropout then acts on
    the code before the softmax layer (it was once dropped silently), and the saved weights are the same."""
    from aekit.registry import create_model

    vae = create_model("vae", (1, 28, 28), code=8, layers=[32])
    plain, dropped = (Classifier(vae.encoder, 8, 10, p, (1, 28, 28)) for p in (0.0, 0.5))
    assert set(plain.state_dict()) == set(dropped.state_dict())
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(0)
    dropped.train()
    assert not torch.equal(dropped(x), dropped(x))  # a fresh dropout mask each call
    dropped.eval()
    assert torch.equal(dropped(x), dropped(x))
