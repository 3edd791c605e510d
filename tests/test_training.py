import numpy as np
import pytest
import torch

from crowd.learning import models
from crowd.learning import trainer as training

torch.set_num_threads(1)


def blobs(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    return (centres[y] + rng.normal(0, 0.5, (n, 2))).astype(np.float32), y


def test_train_learns_separable_blobs_and_is_reproducible():
    x, y = blobs()
    runs = []
    for _ in range(2):
        training.seed_everything(0)
        net = models.MLP(2, 3)
        res = training.train(net, x, y, epochs=15, batch_size=32, lr=0.05, milestones=(10,), seed=3, progress=False)
        runs.append(training.predict_proba(res.model, x))
    assert np.array_equal(runs[0], runs[1])
    assert np.mean(runs[0].argmax(1) == y) > 0.97
    assert list(res.history["lr"]) == pytest.approx([0.05] * 10 + [0.005] * 5)


def test_soft_one_hot_targets_match_hard_targets():
    x, y = blobs(100)
    outs = []
    for targets in (y, np.eye(3, dtype=np.float32)[y]):
        training.seed_everything(1)
        net = models.MLP(2, 3)
        training.train(net, x, targets, epochs=3, batch_size=16, seed=0, progress=False)
        outs.append(training.predict_proba(net, x))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-5)


def test_step_callback_sees_logits_before_the_optimiser_step():
    x, y = blobs(64)
    net = models.MLP(2, 3)
    gaps = []

    def callback(epoch, rows, logits):
        with torch.no_grad():
            now = net(torch.as_tensor(x)[rows])
        gaps.append(float((now - logits).abs().max()))

    training.train(net, x, y, epochs=2, batch_size=16, progress=False, step_callback=callback)
    assert len(gaps) == 8 and max(gaps) < 1e-6  # after a step the outputs would have moved


def test_input_index_equals_materialised_stack():
    x, y = blobs(50)
    index = np.repeat(np.arange(50), 3)
    outs = []
    for inputs, kw in ((x[index], {}), (x, {"input_index": index})):
        training.seed_everything(2)
        net = models.MLP(2, 3)
        training.train(net, inputs, y[index], epochs=2, batch_size=20, progress=False, **kw)
        outs.append(training.predict_proba(net, x))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-6)


def test_keep_best_restores_best_validation_epoch(tmp_path):
    x, y = blobs(200)
    training.seed_everything(0)
    net = models.MLP(2, 3)
    res = training.train(net, x[:150], y[:150], epochs=6, lr=0.05, valid=(x[150:], y[150:]), keep_best=True, progress=False)
    best = res.history["valid_accuracy"].max()
    acc = np.mean(training.predict_proba(res.model, x[150:]).argmax(1) == y[150:])
    assert acc == pytest.approx(best)
    assert res.best_epoch == int(res.history.loc[res.history["valid_accuracy"].idxmax(), "epoch"])


def test_bad_targets_raise():
    x, y = blobs(10)
    net = models.MLP(2, 3)
    with pytest.raises(ValueError, match="distributions"):
        training.train(net, x, np.zeros((10, 3), dtype=np.float32), epochs=1, progress=False)
    with pytest.raises(ValueError, match="rows"):
        training.train(net, x, y[:5], epochs=1, progress=False)
    with pytest.raises(ValueError, match="unknown optimizer"):
        training.train(net, x, y, epochs=1, optimizer="lbfgs", progress=False)


def test_device_and_image_tensor():
    from crowd.device import resolve_device

    assert resolve_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    imgs = np.full((2, 32, 32, 3), 255, dtype=np.uint8)
    t = training.images_to_tensor(imgs)
    assert t.shape == (2, 3, 32, 32) and float(t.max()) == 1.0
    aug = training.random_crop_flip(4)(t, torch.Generator().manual_seed(0))
    assert aug.shape == t.shape


def test_model_output_shapes():
    x = torch.zeros(2, 3, 32, 32)
    for net in (models.resnet18(10), models.vgg16_bn(10)):
        net.eval()
        assert net(x).shape == (2, 10)
    assert models.RodriguesHead(512, 8)(torch.zeros(4, 512)).shape == (4, 8)
    assert models.MusicMLP()(torch.zeros(4, 124)).shape == (4, 10)
    assert models.build_model("mlp", 3, in_features=2)(torch.zeros(5, 2)).shape == (5, 3)
    with pytest.raises(ValueError, match="unknown model"):
        models.build_model("alexnet", 3)


def test_device_override_by_environment(monkeypatch):
    from crowd.device import resolve_device as get_device

    monkeypatch.setenv("CROWD_DEVICE", "cpu")
    assert get_device().type == "cpu"
    monkeypatch.setenv("CROWD_DEVICE", "cuda:0")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            get_device()
    assert get_device("cpu").type == "cpu"  # an explicit argument wins


def test_a_factory_model_is_built_after_seeding():
    x, y = blobs(60)
    torch.manual_seed(123)  # whatever the global state, the factory's weights follow seed
    a = training.train(lambda: models.MLP(2, 3), x, y, epochs=2, seed=5, progress=False).model
    torch.manual_seed(456)
    b = training.train(lambda: models.MLP(2, 3), x, y, epochs=2, seed=5, progress=False).model
    np.testing.assert_array_equal(training.predict_proba(a, x), training.predict_proba(b, x))
    with pytest.raises(TypeError, match="not an nn.Module"):
        training.train(lambda: "net", x, y, epochs=1, progress=False)


def test_batch_loss_reproduces_the_default_loss():
    x, y = blobs(80)
    y_t = torch.as_tensor(y)

    def batch_loss(model, batch, rows):
        return torch.nn.functional.cross_entropy(model(*batch), y_t[rows])

    outs = []
    for kw in ({"targets": y}, {"batch_loss": batch_loss}):
        res = training.train(lambda: models.MLP(2, 3), x, epochs=3, batch_size=16, seed=1, progress=False, **kw)
        outs.append((training.predict_proba(res.model, x), res.history["loss"].to_numpy()))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1], outs[1][1])
    with pytest.raises(ValueError, match="do not also pass targets"):
        training.train(models.MLP(2, 3), x, y, batch_loss=batch_loss, epochs=1, progress=False)
    with pytest.raises(ValueError, match="targets are required"):
        training.train(models.MLP(2, 3), x, epochs=1, progress=False)


def test_batch_loss_weight_gives_a_weighted_epoch_mean():
    x, y = blobs(30)
    seen = []

    def batch_loss(model, batch, rows):
        seen.append(len(rows))
        return torch.tensor(float(len(rows)), requires_grad=True) * 1.0, 2 * len(rows)

    res = training.train(models.MLP(2, 3), x, epochs=1, batch_size=8, batch_loss=batch_loss, progress=False)
    assert seen == [8, 8, 8, 6]
    # losses 8, 8, 8, 6 weighted by 16, 16, 16, 12
    assert res.history["loss"].iloc[0] == pytest.approx((3 * 8 * 16 + 6 * 12) / 60)


def test_numpy_shuffle_uses_default_rng_permutations():
    x, y = blobs(20)
    batches = []

    def record(epoch, rows, logits):
        batches.append(rows.numpy().copy())

    training.train(models.MLP(2, 3), x, y, epochs=2, batch_size=20, shuffle="numpy", seed=9, step_callback=record,
                   progress=False)
    rng = np.random.default_rng(9)
    np.testing.assert_array_equal(batches[0], rng.permutation(20))
    np.testing.assert_array_equal(batches[1], rng.permutation(20))
    with pytest.raises(ValueError, match="shuffle"):
        training.train(models.MLP(2, 3), x, y, epochs=1, shuffle="python", progress=False)


def test_tol_stops_on_a_small_relative_loss_change():
    x, y = blobs(100)
    full = training.train(lambda: models.MLP(2, 3), x, y, epochs=30, lr=0.05, seed=0, progress=False)
    losses = full.history["loss"].to_numpy()
    change = np.abs(np.diff(losses)) / np.abs(losses[:-1])
    tol = float(np.sort(change)[len(change) // 2])  # reached part-way
    first = int(np.argmax(change <= tol)) + 2  # epochs run: up to and including the first small change
    res = training.train(lambda: models.MLP(2, 3), x, y, epochs=30, lr=0.05, seed=0, tol=tol, progress=False)
    assert res.stopped == "tol" and len(res.history) == first < 30
    np.testing.assert_array_equal(res.history["loss"].to_numpy(), losses[:first])
    assert training.relative_loss_change(2.0, 1.5) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="tol"):
        training.train(models.MLP(2, 3), x, y, epochs=1, tol=float("nan"), progress=False)


def test_patience_stops_after_epochs_without_validation_gain():
    x, y = blobs(200)
    res = training.train(lambda: models.MLP(2, 3), x[:150], y[:150], epochs=40, lr=0.05, valid=(x[150:], y[150:]),
                         patience=2, keep_best=True, progress=False)
    acc = res.history["valid_accuracy"].to_numpy()
    assert res.stopped == "patience" and len(acc) < 40
    assert res.best_epoch == int(np.argmax(acc)) + 1 == len(acc) - 2  # first best, then 2 epochs without gain
    assert np.all(acc[-2:] <= acc[res.best_epoch - 1])
    with pytest.raises(ValueError, match="patience"):
        training.train(models.MLP(2, 3), x, y, epochs=1, patience=2, progress=False)
