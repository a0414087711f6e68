import numpy as np
import pytest
import tensorflow as tf

from vdsr_tf.model import make_predictor
from vdsr_tf.export import export_saved_model, tf_imresize
from vdsr_tf.imresize import imresize
from vdsr_tf.infer import enlarge
from vdsr_tf.model import build_vdsr


@pytest.mark.parametrize("shape, out", [((13, 17, 2), (26, 34)), ((12, 9, 1), (30, 23)), ((20, 20, 3), (7, 5))])
def test_graph_resize_equals_numpy_imresize(rng, shape, out):
    image = rng.random(shape)
    np.testing.assert_allclose(
        tf_imresize(tf.constant(image), *out).numpy(), imresize(image, output_shape=out), atol=1e-12
    )


def test_saved_model_agrees_with_the_python_path(tmp_path, rng):
    model = build_vdsr(depth=3, width=8, seed=4)
    export_saved_model(model, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    serve = loaded.signatures["serving_default"]
    smooth = np.cumsum(np.cumsum(rng.random((21, 30, 3)), axis=0), axis=1)
    image = (255 * smooth / smooth.max()).astype(np.uint8)
    for scale in (2.0, 2.5):
        served = list(serve(image=tf.constant(image), scale=tf.constant(scale)).values())[0].numpy()
        expected = enlarge(image, scale, make_predictor(model), tile=512, margin=3)
        assert served.shape == expected.shape and served.dtype == np.uint8
        # Same arithmetic; the Python path rounds Y to float32 once more before the network.
        assert np.max(np.abs(served.astype(int) - expected)) <= 1
