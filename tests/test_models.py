import numpy as np
import pytest
import torch

from aekit.errors import AekitError
from aekit.registry import create_model, list_models, model_class, register_model

# One input shape per family that it can take; a new family only needs an entry here.
SHAPES = {"linear": (1, 28, 28), "mlp": (1, 28, 28), "conv": (1, 28, 28), "vae": (1, 28, 28), "ladder": (1, 28, 28),
          "mae": (1, 28, 28)}
EXTRA = {"mlp": {"layers": [64, 32]}, "conv": {"channels": [8, 16]}, "vae": {"layers": [32]},
         "ladder": {"layers": [32, 16], "latents": [12]},
         "mae": {"patch": 7, "width": 16, "depth": 1, "heads": 2, "decoder_width": 16}}


def build(name, shape=None, **kw):
    torch.manual_seed(0)
    m = create_model(name, shape or SHAPES[name], code=8, **{**EXTRA.get(name, {}), **kw})
    m.resolve_output("unit")
    return m


def test_every_family_has_a_test_shape():
    assert set(list_models()) == set(SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_forward_shapes_and_backward(name):
    m = build(name)
    x = torch.rand(5, *SHAPES[name])
    out = m(x)
    assert out.recon.shape == x.shape and out.code.shape == (5, 8)
    assert out.loss.ndim == 0 and "recon" in out.terms
    out.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_save_load_roundtrip_gives_equal_outputs(name, tmp_path):
    from aekit.api import load
    from aekit.training import checkpoint as ckpt

    m = build(name).eval()
    ckpt.save_tensors(tmp_path / "model.safetensors", m.state_dict())
    ckpt.write_json(tmp_path / "config.json", {"model": m.config()})
    m2 = load(tmp_path)
    x = torch.rand(3, *SHAPES[name])
    outs = []
    for model in (m, m2):  # the same noise for a model that samples (vae)
        torch.manual_seed(1)
        outs.append(model(x).recon)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert m2.config() == m.config()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_seeded_construction_is_deterministic(name):
    a, b = build(name), build(name)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("shape", [(1, 27, 31), (3, 100, 100), (1, 5, 5), (2, 13, 8)])
def test_conv_on_odd_sizes(shape):
    m = build("conv", shape)
    x = torch.rand(2, *shape)
    assert m(x).recon.shape == x.shape


def test_conv_rejects_tabular():
    with pytest.raises(AekitError, match="needs images"):
        create_model("conv", (10,))


def test_mlp_layout_and_simplest_default():
    m = create_model("mlp", (1, 28, 28))
    linears = [lin for lin in m.modules() if isinstance(lin, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(784, 32), (32, 784)]
    deep = create_model("mlp", (784,), layers=[1000, 500, 250], code=30)
    sizes = [(lin.in_features, lin.out_features) for lin in deep.modules() if isinstance(lin, torch.nn.Linear)]
    assert sizes == [(784, 1000), (1000, 500), (500, 250), (250, 30), (30, 250), (250, 500), (500, 1000), (1000, 784)]


@pytest.mark.parametrize(("norm", "cls"), [("batch", torch.nn.BatchNorm1d), ("layer", torch.nn.LayerNorm)])
def test_mlp_norm_sits_before_each_hidden_activation_and_never_on_the_code(norm, cls):
    m = create_model("mlp", (784,), layers=[64, 32], code=8, norm=norm)
    kinds = [type(mod).__name__ for mod in [*m.encoder, *m.decoder]]
    # 784-64-32-8 and back: a norm after each hidden Linear only, then the activation
    assert kinds == ["Flatten", "Linear", cls.__name__, "ELU", "Linear", cls.__name__, "ELU", "Linear",
                     "Linear", cls.__name__, "ELU", "Linear", cls.__name__, "ELU", "Linear"]
    assert [mod.normalized_shape[0] if norm == "layer" else mod.num_features
            for mod in m.modules() if isinstance(mod, cls)] == [64, 32, 32, 64]
    assert m.config()["norm"] == norm
    m.eval()  # in eval mode a BatchNorm uses its running statistics: one sample is fine
    assert m(torch.rand(1, 784)).recon.shape == (1, 784)


@pytest.mark.parametrize(("norm", "cls"), [("batch", torch.nn.BatchNorm2d), ("layer", torch.nn.GroupNorm)])
def test_conv_norm_sits_before_each_hidden_activation_and_the_saved_weights_reload(norm, cls, tmp_path):
    from aekit.api import load
    from aekit.training import checkpoint as ckpt

    m = build("conv", norm=norm)  # 1x28x28, channels 8,16: maps 8x14x14, 16x7x7; code 8
    kinds = [type(mod).__name__ for mod in m.encoder]
    assert kinds == ["Conv2d", cls.__name__, "ELU", "Conv2d", cls.__name__, "ELU", "Flatten", "Linear"]
    maps = [mod.num_features if norm == "batch" else mod.num_channels for mod in m.modules() if isinstance(mod, cls)]
    # two encoder stages; the decoder's smallest map (its linear map's output) and its hidden stage (never the output)
    assert maps == [8, 16, 16, 8] and isinstance(m.decoder.fc_norm[0], cls)
    x = torch.rand(4, 1, 28, 28)
    m.train()
    m(x).loss.backward()  # the running statistics move
    m.eval()
    ckpt.save_tensors(tmp_path / "model.safetensors", m.state_dict())
    ckpt.write_json(tmp_path / "config.json", {"model": m.config()})
    torch.testing.assert_close(load(tmp_path)(x).recon, m(x).recon, rtol=0, atol=0)
    assert m.config()["norm"] == norm
    plain = build("conv")  # without a norm, the modules and weights' names are those of a run saved before
    assert [type(mod).__name__ for mod in plain.encoder] == ["Conv2d", "ELU", "Conv2d", "ELU", "Flatten", "Linear"]
    assert sorted(plain.state_dict()) == sorted(
        [f"encoder.{i}.{w}" for i in (0, 2, 5) for w in ("weight", "bias")]
        + [f"decoder.{n}.{w}" for n in ("fc", "convs.0", "convs.1") for w in ("weight", "bias")])


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_fine_tuning_dropout_comes_once_per_layer_after_its_norm_and_activation(norm):
    from aekit.models.classifier import with_dropout

    for name in ("mlp", "conv"):
        enc = build(name, norm=norm).encoder
        kinds = [type(mod).__name__ for mod in with_dropout(enc, 0.5)]
        layer = ("Linear" if name == "mlp" else "Conv2d", *(["BatchNorm1d" if name == "mlp" else "BatchNorm2d"]
                                                              if norm == "batch" else []), "ELU", "Dropout")
        start = ["Flatten"] if name == "mlp" else []
        end = ["Linear", "Dropout"] if name == "mlp" else ["Flatten", "Linear", "Dropout"]
        assert kinds == [*start, *layer, *layer, *end], (name, norm)


def test_linear_model_is_linear():
    m = create_model("linear", (6,), code=2)
    m.resolve_output("real")
    x, y = torch.randn(4, 6), torch.randn(4, 6)
    f = lambda t: m(t).recon - m(torch.zeros(1, 6)).recon  # noqa: E731
    torch.testing.assert_close(f(x + y), f(x) + f(y), atol=1e-5, rtol=1e-5)


def test_output_auto_follows_data_range():
    m = create_model("mlp", (4,), code=2)
    m.resolve_output("real")
    assert m.output == "identity"
    m = create_model("mlp", (4,), code=2)
    m.resolve_output("unit")
    assert m.output == "sigmoid"
    with pytest.raises(AekitError, match="bce"):
        create_model("mlp", (4,), code=2, loss="bce").resolve_output("real")


def test_bce_loss_is_stable_and_matches_definition():
    m = build("mlp", loss="bce")
    x = torch.rand(4, 1, 28, 28)
    out = m(x)
    ref = torch.nn.functional.binary_cross_entropy(out.recon, x)
    torch.testing.assert_close(out.loss, ref, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"code": 0}, "code size"),
        ({"code": -3}, "code size"),
        ({"layers": [10, 0]}, "layer size"),
        ({"activation": "swishy"}, "unknown activation"),
        ({"loss": "l1"}, "unknown loss"),
        ({"depth": 3}, "has no option depth"),
        ({"norm": "group"}, "unknown norm"),
        ({"norm": 1}, "norm = 1 has the wrong type"),
    ],
)
def test_bad_options(kw, msg):
    with pytest.raises(AekitError, match=msg):
        create_model("mlp", (1, 28, 28), **{"code": 4, **kw})


def test_registry_rejects_unknown_and_duplicate():
    with pytest.raises(AekitError, match="unknown model 'transformer'"):
        model_class("transformer")
    with pytest.raises(ValueError, match="already registered"):
        register_model("mlp", "again")(type("X", (), {}))


def test_numpy_free_of_nan_for_extreme_inputs():
    m = build("mlp", loss="bce")
    out = m(torch.ones(2, 1, 28, 28))
    assert np.isfinite(out.loss.item())
