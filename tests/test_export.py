import numpy as np
import pytest
import tensorflow as tf

from vdsr_tf.export import export_saved_model, tf_imresize
from vdsr_tf.imresize import imresize
from vdsr_tf.infer import enlarge
from vdsr_tf.model import build_vdsr, make_predictor


@pytest.mark.parametrize("shape, out", [((13, 17, 2), (26, 34)), ((12, 9, 1), (30, 23)), ((20, 20, 3), (7, 5))])
def test_graph_resize_equals_numpy_imresize(rng, shape, out):
    image = rng.random(shape)
    np.testing.assert_allclose(
        tf_imresize(tf.constant(image), *out).numpy(), imresize(image, output_shape=out), atol=1e-12
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, the loaded SavedModel's serving function) of a small network."""
    model = build_vdsr(depth=3, width=8, seed=4)
    folder = str(tmp_path_factory.mktemp("saved"))
    export_saved_model(model, folder)
    return model, tf.saved_model.load(folder).signatures["serving_default"]


def test_saved_model_agrees_with_the_python_path(exported, rng):
    model, serve = exported
    smooth = np.cumsum(np.cumsum(rng.random((21, 30, 3)), axis=0), axis=1)
    image = (255 * smooth / smooth.max()).astype(np.uint8)
    for scale in (2.0, 2.5, 1.2):  # 30 columns at x1.2: 36, where the float32 1.2000000477 gives 37
        served = list(serve(image=tf.constant(image), scale=tf.constant(scale)).values())[0].numpy()
        expected = enlarge(image, scale, make_predictor(model), tile=512, margin=3)
        assert served.shape == expected.shape and served.dtype == np.uint8
        # Same arithmetic; the Python path rounds Y to float32 once more before the network.
        assert np.max(np.abs(served.astype(int) - expected)) <= 1


@pytest.mark.parametrize("scale", [1.0, 0.5, 8.01, 1000.0, float("nan")])
def test_saved_model_refuses_the_scales_the_command_line_refuses(exported, scale):
    _, serve = exported
    image = tf.zeros((4, 5, 3), tf.uint8)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"scale must lie in \(1, 8\]"):
        serve(image=image, scale=tf.constant(scale, tf.float32))
    # The largest scale allowed still serves: ceil(4 * 8) x ceil(5 * 8).
    assert list(serve(image=image, scale=tf.constant(8.0)).values())[0].shape == (32, 40, 3)


@pytest.mark.parametrize("shape", [(6, 5, 1), (6, 5, 4), (6, 5), (0, 5, 3)])
def test_saved_model_says_what_image_it_takes(exported, shape):
    _, serve = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match="image must be"):
        serve(image=tf.zeros(shape, tf.uint8), scale=tf.constant(2.0))


@pytest.mark.parametrize(
    "image, scale, named",
    [
        ((1, 6, 5, 3), 2.0, r"tensor image \[1,6,5,3\] .* \[\?,\?,3\]"),
        ((6, 5, 3), [2.0], r"tensor scale \[1\] .* \[\]"),
    ],
)
def test_saved_model_names_the_input_of_a_wrong_rank(exported, image, scale, named):
    """TF Serving's row form ("instances") adds a batch dimension to both inputs."""
    _, serve = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match=named):
        serve(image=tf.zeros(image, tf.uint8), scale=tf.constant(scale))
