import keras
import numpy as np
import pytest
import tensorflow as tf

from vdsr_tf.model import build_vdsr, conv_layers
from vdsr_tf.step import clip_gradients, make_optimizer, make_train_step

THETA, LR = 1e-4, 0.1


def _one_step(rng, *, clip="value", bias_lr_scale=1.0, optimizer="sgd", momentum=0.0, grad_clip=THETA):
    """Weights before and after one step of a small network, and the clipped share."""
    model = build_vdsr(depth=3, width=8, seed=0)
    opt = make_optimizer(optimizer, learning_rate=LR, momentum=momentum)
    opt.build(model.trainable_variables)
    step = make_train_step(
        model,
        opt,
        tf.distribute.get_strategy(),
        batch_size=8,
        weight_decay=1e-4,
        grad_clip=grad_clip,
        clip=clip,
        bias_lr_scale=bias_lr_scale,
    )
    inputs = rng.random((8, 21, 21, 1)).astype(np.float32)
    before = [v.numpy().copy() for v in model.trainable_variables]
    _, share = step(tf.constant(inputs), tf.constant(inputs[::-1].copy()), tf.constant(LR))
    after = [v.numpy() for v in model.trainable_variables]
    return before, after, float(share), model


def _applied_gradients(before, after):
    # Plain SGD without momentum moves each weight by lr * (clipped gradient).
    return [(b - a) / LR for b, a in zip(before, after)]


def test_value_clip_bounds_every_applied_element(rng):
    before, after, share, _ = _one_step(rng, clip="value")
    applied = _applied_gradients(before, after)
    assert share > 0.1  # the clip binds here, so the test has teeth
    # Float32 differences of weights of size ~0.5 are good to ~1e-7, 1e-3 of the step.
    assert max(np.abs(a).max() for a in applied) <= THETA / LR * (1 + 1e-3)


def test_norm_clip_bounds_every_tensor_norm(rng):
    before, after, share, _ = _one_step(rng, clip="norm")
    norms = [np.linalg.norm(a) for a in _applied_gradients(before, after)]
    assert share > 0.5
    assert max(norms) <= THETA / LR * (1 + 1e-3)
    assert max(norms) >= THETA / LR * (1 - 1e-3)  # the clipped tensors sit at the bound
    # Unlike the value clip, an element may exceed theta/lr when its tensor's norm is within bounds.
    assert max(np.abs(a).max() for a in _applied_gradients(before, after)) > THETA / LR * 0.1


def test_global_norm_clip_bounds_the_norm_of_all_gradients(rng):
    before, after, share, _ = _one_step(rng, clip="global_norm")
    total = np.sqrt(sum(np.sum(a.astype(np.float64) ** 2) for a in _applied_gradients(before, after)))
    assert share == 1.0
    assert total == pytest.approx(THETA / LR, rel=1e-3)


def test_clip_forms_report_what_they_clipped():
    gradients = [tf.constant([3.0, 4.0]), tf.constant([0.1, 0.0])]
    _, value_share = clip_gradients("value", gradients, 1.0)
    clipped, norm_share = clip_gradients("norm", gradients, 1.0)
    assert float(value_share) == pytest.approx(2 / 4)
    assert float(norm_share) == pytest.approx(1 / 2)
    np.testing.assert_allclose(clipped[0].numpy(), [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(clipped[1].numpy(), [0.1, 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="--clip must be one of value, norm, global_norm"):
        clip_gradients("elementwise", gradients, 1.0)


@pytest.mark.parametrize("optimizer,momentum", [("sgd", 0.9), ("adam", 0.9)])
def test_bias_lr_scale_scales_exactly_the_bias_updates(rng, optimizer, momentum):
    plain_before, plain_after, _, model = _one_step(
        np.random.default_rng(1), optimizer=optimizer, momentum=momentum, grad_clip=None
    )
    scaled_before, scaled_after, _, _ = _one_step(
        np.random.default_rng(1), optimizer=optimizer, momentum=momentum, grad_clip=None, bias_lr_scale=0.1
    )
    bias_names = {layer.bias.path for layer in conv_layers(model)}
    for variable, b1, a1, b2, a2 in zip(
        model.trainable_variables, plain_before, plain_after, scaled_before, scaled_after
    ):
        np.testing.assert_array_equal(b1, b2)
        if variable.path in bias_names:
            np.testing.assert_allclose(a2 - b2, 0.1 * (a1 - b1), rtol=1e-4, atol=1e-9)
            assert np.abs(a1 - b1).max() > 0
        else:
            np.testing.assert_allclose(a2 - b2, a1 - b1, rtol=1e-5, atol=1e-9)


def test_unknown_clip_form_is_refused_when_the_step_is_built():
    model = build_vdsr(depth=3, width=4, seed=0)
    with pytest.raises(ValueError, match="--clip"):
        make_train_step(
            model,
            keras.optimizers.SGD(),
            tf.distribute.get_strategy(),
            batch_size=8,
            weight_decay=0,
            grad_clip=1e-3,
            clip="nope",
        )
