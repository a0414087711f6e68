"""The `vdsr` command (also `python main.py`): flags, their checks, and one run of one mode.

vdsr                                                # evaluate: the paper's Table 3
vdsr --input=photo.jpg --scale=2.5 --output=enlarged/   # enlarge your own images
vdsr --serve                                        # the same on a web page, http://127.0.0.1:8080/
vdsr --is_train=True                                # train (resumes if a state exists)
vdsr --import_matconvnet=VDSR_Official.mat --checkpoint_dir=DIR   # the authors' weights
vdsr --average_weights='runs/adam/weights/*.h5' --checkpoint_dir=DIR   # weight averaging
vdsr --export_onnx=vdsr.onnx                        # ONNX (Y in, Y out)
vdsr --export_saved_model=DIR                       # TF Serving model (RGB in, RGB out)
"""

import dataclasses
import errno
import glob
import logging as python_logging
import os
import re
import socket
import sys
import tempfile
import textwrap

from absl import app, flags, logging

from vdsr_tf import __version__
from vdsr_tf.atomic import missing_folders, remove_empty_folders
from vdsr_tf.config import CLIP_FORMS, OPTIMIZERS, PRECISIONS, require_folder
from vdsr_tf.paths import WEIGHTS_NAME, default_checkpoint_dir, default_data_dir
from vdsr_tf.runtime import exit_status, prefer_bfc_allocator, stop_signals_interrupt

FLAGS = flags.FLAGS
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# (title, how many of this module's flags were defined before it): --help lists each section's flags under it.
HELP_SECTIONS: list[tuple[str, int]] = []


def _own_flags() -> list:
    return FLAGS.flags_by_module_dict().get(__name__, [])


def _section(title: str) -> None:
    HELP_SECTIONS.append((title, len(_own_flags())))


PAPER_DATASETS = ("Set5", "Set14", "B100", "Urban100")

_section("Evaluate: the paper's Table 3 on the test sets (the default mode)")
flags.DEFINE_string(
    "data_dir",
    None,
    "Folder holding test/<dataset>/ and train/ (default: ../shared/datasets if present, else data/datasets).",
)
flags.DEFINE_list(
    "test_datasets",
    None,
    "Datasets under <data_dir>/test to evaluate (default: those of Set5, Set14, B100, Urban100 present).",
)
flags.DEFINE_list("scales", ["2", "3", "4"], "Scales to evaluate (integers of at least 2).")
flags.DEFINE_string("results_json", None, "Also write the evaluation rows to this JSON file.")
flags.DEFINE_string(
    "save_images", None, "Folder to write the super-resolved Y images to, as <folder>/<dataset>/<name>_x<scale>.png."
)
_section("Enlarge your own images (--input, or --serve for a web page)")
flags.DEFINE_string("input", None, "Image file, folder or glob to enlarge (instead of evaluating).")
flags.DEFINE_float("scale", 2.0, "Enlargement factor for --input: any real number in (1, 8].")
flags.DEFINE_string("output", "enlarged", "Folder for the enlarged images (<name>_x<scale>.<ext>).")
flags.DEFINE_enum(
    "format",
    None,
    ["png", "jpeg", "jpg", "webp", "bmp", "tiff", "tif"],
    "Output format, any case (default: the input's; PNG for 16-bit input, a BMP with alpha and formats not written "
    "here, such as GIF). JPEG and BMP put transparency onto white.",
    case_sensitive=False,
)
flags.DEFINE_integer(
    "quality", 95, "JPEG and WebP quality, 1-100, for --input (a lossless WebP input stays lossless WebP)."
)
flags.DEFINE_integer("tile", 512, "Tile side for inference on large images; bounds memory (~0.4 GB at 512).")
flags.DEFINE_bool(
    "serve",
    False,
    "Start a web page to enlarge images without flags (pip install 'vdsr-tf[web]'); --format, --quality and --tile "
    "apply to it as to --input, and --scale is the one it offers first.",
)
flags.DEFINE_integer("port", 8080, "Port of the --serve page (0: any free one).")
flags.DEFINE_bool(
    "open_browser", True, "Open the --serve page in the default browser on a desktop (not over SSH or headless)."
)
flags.DEFINE_string(
    "host", "127.0.0.1", "Address the --serve page listens on; another than 127.0.0.1 opens it to other machines."
)
_section("Train (--is_train=True; resumes from <checkpoint_dir>/state when there is one)")
flags.DEFINE_bool("is_train", False, "Train (True) or evaluate (False).")
flags.DEFINE_string("train_h5", "data/train.h5", "Patch file from data/generate_dataset/generate_train.py.")
flags.DEFINE_string("tensorboard_dir", "logs", "Folder for the TensorBoard curves (loss, learning rate, PSNR).")
flags.DEFINE_string(
    "validation_dataset",
    "Set5",
    "Dataset under <data_dir>/test for the validation curves (the paper's Figure curves use Set5).",
)
flags.DEFINE_float("lr", 0.1, "Initial learning rate (paper: 0.1).")
flags.DEFINE_integer("lr_decay_epochs", 20, "Divide the learning rate by 10 every this many epochs (paper: 20).")
flags.DEFINE_integer("epochs", 80, "Epochs (paper: 80).")
flags.DEFINE_integer("steps_per_epoch", 125, "Batches per epoch (paper: 9,960 iterations in 80 epochs).")
flags.DEFINE_integer("batch_size", 64, "Patches per step (paper: 64).")
flags.DEFINE_enum(
    "optimizer",
    "sgd",
    list(OPTIMIZERS),
    "sgd: the paper's SGD with momentum and adjustable clipping. adam: Adam at --lr, unclipped (not the paper's; "
    "for continuing from the paper schedule's weights, configs/adam_continuation.flags and docs/training.md).",
)
flags.DEFINE_float("momentum", 0.9, "SGD momentum (paper: 0.9).")
flags.DEFINE_float("weight_decay", 1e-4, "L2 weight decay on the kernels (paper: 1e-4).")
flags.DEFINE_float(
    "grad_clip",
    1e-3,
    "theta of the adjustable gradient clipping: the gradient is clipped to theta/lr (see --clip). The paper gives "
    "no value; 1e-3 is the best-known TensorFlow port's.",
)
flags.DEFINE_enum(
    "clip",
    "norm",
    list(CLIP_FORMS),
    "Reading of the paper's clip to theta/lr: norm (each tensor's L2 norm, as jangsoopark/VDSR-TensorFlow; the "
    "default: at theta 1e-3 it kept every deep ReLU alive in 300 steps), value (each element, the paper's words: "
    "at 1e-3 it killed 82% of the channels of layers 10-19; it trains at 1e-4), global_norm (all gradients' "
    "norm). docs/training.md.",
)
flags.DEFINE_float(
    "bias_lr_scale",
    0.1,
    "Multiplies the biases' updates: 0.1 as Caffe's and MatConvNet's VDSR (the default: under the clip every bias "
    "vector moves theta a step; at 0.1 the design card's command had 3% lower training loss at step 500); 1 = off.",
)
flags.DEFINE_bool(
    "restart",
    False,
    "Start training afresh although <checkpoint_dir> holds a state; the earlier files move to previous-<time>/.",
)
flags.DEFINE_integer("max_steps", 0, "Stop after this many steps in this run (0: run the whole schedule).")
flags.DEFINE_integer("validate_every", 0, "Also validate every this many steps (0: only at epoch ends).")
flags.DEFINE_float("save_every_minutes", 5.0, "Save the training state at least this often.")
flags.DEFINE_bool(
    "keep_epoch_weights",
    False,
    "Also keep each epoch end's weights as <checkpoint_dir>/weights/vdsr_<step, 6 digits>.h5.",
)
flags.DEFINE_integer("seed", 123, "Seed of weight initialisation and data order.")
flags.DEFINE_string(
    "init_weights", None, "Start from this vdsr.h5 (and its step) when checkpoint_dir holds no training state."
)
_section("Export the network and exit")
flags.DEFINE_string(
    "export_onnx",
    None,
    "Write the network as ONNX to this file: float32 Y in [0, 1] (N, 1, H, W), the bicubic-enlarged image, "
    "-> Y of the same shape; any H and W; opset 17.",
)
flags.DEFINE_string(
    "export_saved_model",
    None,
    "Write a TensorFlow SavedModel (RGB uint8 image, scale -> RGB uint8) to this folder and exit.",
)
_section("Write <checkpoint_dir>/vdsr.h5 from other weights and exit")
flags.DEFINE_string(
    "import_matconvnet", None, "Convert the authors' VDSR_Official.mat into <checkpoint_dir>/vdsr.h5 and exit."
)
flags.DEFINE_list(
    "average_weights",
    None,
    "Weights files or globs (say a run's weights/vdsr_*.h5 from --keep_epoch_weights): write their mean to "
    "<checkpoint_dir>/vdsr.h5 and exit.",
)
_section("Other")
flags.DEFINE_string(
    "checkpoint_dir",
    "checkpoints",
    "Folder of vdsr.h5 (weights) and, when training, state/ and the training record. Not given, evaluating, "
    "enlarging and exporting read ./checkpoints/vdsr.h5 if it exists, else the weights shipped with the project.",
)
flags.DEFINE_integer(
    "depth",
    None,
    "Network depth (paper: 20). Training default 20; evaluation checks the checkpoint against it when given.",
)
flags.DEFINE_integer("width", 64, "Filters per hidden layer (paper: 64).")
flags.DEFINE_bool(
    "residual", True, "Residual learning: output = input + network (paper); False for the paper's Table 1 baseline."
)
flags.DEFINE_enum(
    "precision",
    None,
    list(PRECISIONS),
    "Arithmetic of the network. auto: bfloat16 where the CPU or GPU has bfloat16 units (amx_bf16, avx512_bf16, "
    "GPU 8.0+), else float32. bfloat16: the middle 17 layers in bfloat16, the first two, the last and the add in "
    "float32 (training: the first alone; 2-5x faster on such machines). Default: float32 for evaluation "
    "(Table 3 exactly) and --export_saved_model, auto for training, --input and --serve. --export_onnx always "
    "writes float32.",
)
flags.DEFINE_bool(
    "overwrite",
    False,
    "Replace existing outputs: enlarged photos (--input), the vdsr.h5 of --average_weights and "
    "--import_matconvnet, --export_saved_model and --export_onnx. --results_json and --save_images are always "
    "rewritten.",
)


class UsageError(ValueError):
    """A flag value that cannot work."""


def _once_each(flag: str, values: list) -> list:
    """A list flag's items, refusing one given twice (`--scales=2,2` would score x2 twice)."""
    repeated = sorted({str(value) for value in values if values.count(value) > 1})
    if repeated:
        raise UsageError(f"--{flag}: {', '.join(repeated)} given twice")
    return values


def _scales(values: list[str]) -> list[int]:
    try:
        scales = [int(value) for value in values]
    except ValueError:
        raise UsageError(f"--scales: expected integers, got {','.join(values)}") from None
    if not scales or min(scales) < 2:
        raise UsageError(f"--scales: every scale must be an integer of at least 2, got {','.join(values)}")
    return _once_each("scales", scales)


def _data_dir() -> str:
    data_dir = FLAGS.data_dir or default_data_dir()
    if not os.path.isdir(data_dir):
        advice = "put the datasets there" if FLAGS["data_dir"].present else "pass --data_dir=FOLDER holding test/Set5/"
        raise UsageError(f"--data_dir: no data folder {data_dir}; {advice} (README, 'Data and weights')")
    return data_dir


def _test_datasets(data_dir: str) -> list[str]:
    if FLAGS.test_datasets:
        return _once_each("test_datasets", FLAGS.test_datasets)
    present = [name for name in PAPER_DATASETS if os.path.isdir(os.path.join(data_dir, "test", name))]
    if not present:
        raise UsageError(f"--data_dir: none of {', '.join(PAPER_DATASETS)} under {data_dir}/test")
    return present


def _precision(default: str) -> str:
    """--precision (or `default` when not given) resolved for this machine, and said in the log."""
    _import_tensorflow()
    from vdsr_tf.precision import gpu_bf16, native_bf16, resolve_precision

    reason = native_bf16(gpu=gpu_bf16())
    if not FLAGS.precision and default == "float32":
        faster = f" (--precision=auto would use bfloat16: {reason})" if reason else ""
        logging.info("precision: float32, this mode's default%s", faster)
        return "float32"
    precision, why = resolve_precision(FLAGS.precision or default, reason=reason)
    logging.info("precision: %s", why)
    return precision


def _weights_path() -> str:
    return os.path.join(FLAGS.checkpoint_dir, WEIGHTS_NAME)


def _weights_to_read() -> str:
    """Without --checkpoint_dir, from a folder with no checkpoints/, the weights shipped with the project;
    modes that write weights keep ./checkpoints so that they never write into the installed package."""
    folder = FLAGS.checkpoint_dir if FLAGS["checkpoint_dir"].present else default_checkpoint_dir()
    return os.path.join(folder, WEIGHTS_NAME)


def _refuse_to_replace_weights() -> None:
    require_folder("checkpoint_dir", FLAGS.checkpoint_dir)
    if os.path.exists(_weights_path()) and not FLAGS.overwrite:
        raise UsageError(f"--checkpoint_dir: {_weights_path()} exists (use --overwrite to replace it)")


def _write_weights(weights: list, *, source: str, residual: bool, metadata: dict) -> None:
    """Writes (kernel, bias) pairs as <checkpoint_dir>/vdsr.h5, checked against the network they describe."""
    _import_tensorflow()
    from vdsr_tf.model import build_vdsr, save_weights, set_conv_weights

    model = build_vdsr(depth=len(weights), width=weights[0][0].shape[-1], residual=residual)
    set_conv_weights(model, weights, source=source)
    try:
        save_weights(model, _weights_path(), residual=residual, metadata=metadata)
    except OSError as error:
        raise UsageError(f"--checkpoint_dir: cannot write {_weights_path()} ({error.strerror})") from None


def run_import() -> None:
    from vdsr_tf.official_weights import read_matconvnet

    mat_path = FLAGS.import_matconvnet
    _refuse_to_replace_weights()
    weights = read_matconvnet(mat_path)
    metadata = {"source": f"imported from {os.path.basename(mat_path)}"}
    _write_weights(weights, source=mat_path, residual=True, metadata=metadata)
    logging.info("wrote %s from %s", _weights_path(), mat_path)


def run_average() -> None:
    paths = []
    for pattern in FLAGS.average_weights:
        matches = [pattern] if os.path.isfile(pattern) else sorted(glob.glob(pattern))  # b[1].h5 names itself
        if not matches:
            raise UsageError(f"--average_weights: no file matches {pattern}")
        paths.extend(matches)
    _refuse_to_replace_weights()
    _import_tensorflow()
    from vdsr_tf.model import average_weights

    weights, attributes = average_weights(paths)
    metadata = {key: attributes[-1][key] for key in ("source", "train_h5") if key in attributes[-1]}
    steps = [int(file_attributes["step"]) for file_attributes in attributes if "step" in file_attributes]
    if len(steps) == len(paths):
        metadata.update(step=max(steps), averaged_steps=steps)
    _write_weights(weights, source=paths[-1], residual=bool(attributes[-1]["residual"]), metadata=metadata)
    logging.info("wrote %s, the mean of %d weights files", _weights_path(), len(paths))


def run_evaluation() -> None:
    from vdsr_tf.atomic import write_json
    from vdsr_tf.images import dataset_paths

    scales = _scales(FLAGS.scales)
    data_dir = _data_dir()
    datasets = _test_datasets(data_dir)
    for dataset in datasets:
        dataset_paths(data_dir, dataset)  # a missing or empty folder is said before the model loads
    _writable_file(FLAGS.results_json, "--results_json")
    if FLAGS.save_images:
        _writable_folder(FLAGS.save_images, "--save_images")
    model, attributes = _load_checkpoint("float32")
    from vdsr_tf.evaluate import evaluate, format_table

    logging.info(
        "evaluating %s (%s, step %s)", _weights_to_read(), attributes.get("source", "?"), attributes.get("step", "-")
    )
    rows = evaluate(model, data_dir=data_dir, datasets=datasets, scales=scales, save_dir=FLAGS.save_images)
    print(format_table(rows))
    if FLAGS.save_images:
        logging.info("wrote the super-resolved Y images into %s", FLAGS.save_images)
    if FLAGS.results_json:
        try:
            write_json(FLAGS.results_json, rows)
        except OSError as error:
            raise UsageError(f"--results_json: cannot write {FLAGS.results_json} ({error.strerror})") from None
        logging.info("wrote %s", FLAGS.results_json)


def _load_checkpoint(default_precision: str | None):
    """The checkpoint's model in --precision, `default_precision` when it is not given; None: float32 whatever
    the flag says, for a mode that reads the weights alone. A missing file is said before TensorFlow loads."""
    path = _weights_to_read()
    if not os.path.isfile(path):
        raise UsageError(
            f"--checkpoint_dir: no checkpoint {path}; use the weights shipped with the project (checkpoints/vdsr.h5 "
            "of a fresh clone, or pip install the project), train your own (--is_train=True), or import the "
            "authors' (Kim, Lee, Lee, CVPR 2016): VDSR_Official.mat from https://cv.snu.ac.kr/research/VDSR/, then "
            "--import_matconvnet=VDSR_Official.mat"
        )
    _import_tensorflow()
    from vdsr_tf.model import load_vdsr

    precision = "float32" if default_precision is None else _precision(default_precision)

    return load_vdsr(path, expected_depth=FLAGS.depth, precision=precision)


def _writable_file(path: str | None, flag: str) -> None:
    """Checks before the long work that `path` can be written, so that no result is lost at the end."""
    if not path:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"{flag}: {path} is a folder; give a file name")
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: cannot write {path} (no writable folder {folder})")


def _writable_folder(folder: str, flag: str) -> None:
    require_folder(flag.removeprefix("--"), folder)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{flag}: cannot create {folder} ({error.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: {folder} is not writable")


def _check_tile_and_quality() -> None:
    if FLAGS.tile < 16:
        raise UsageError(f"--tile must be at least 16, got {FLAGS.tile}")
    if not 1 <= FLAGS.quality <= 100:
        raise UsageError(f"--quality must lie in [1, 100], got {FLAGS.quality}")


def run_enlarge() -> int:
    from vdsr_tf.infer import FORMATS, Tally, check_scale, enlarge_files, expand_inputs

    scale = check_scale(FLAGS.scale)
    _check_tile_and_quality()
    extension = os.path.splitext(FLAGS.output)[1].lower().lstrip(".")
    if extension in (*FORMATS, "gif") and not os.path.isdir(FLAGS.output):
        raise UsageError(
            f"--output is the folder the enlarged files go into, named after their inputs (photo_x2.jpg); "
            f"give a folder, say --output={os.path.splitext(FLAGS.output)[0] or 'enlarged'}"
        )
    paths = expand_inputs(FLAGS.input)
    tally, created = Tally(), missing_folders(FLAGS.output)
    try:
        _writable_folder(FLAGS.output, "--output")
        model, _ = _load_checkpoint("auto")
        from vdsr_tf.model import conv_layers, make_predictor

        enlarge_files(
            paths,
            out_dir=FLAGS.output,
            scale=scale,
            predict=make_predictor(model),
            tile=FLAGS.tile,
            margin=len(conv_layers(model)),
            requested_format=FLAGS.format,
            quality=FLAGS.quality,
            overwrite=FLAGS.overwrite,
            tally=tally,
        )
    except KeyboardInterrupt as interrupt:
        print(
            f"interrupted: {len(tally.written)} of {len(paths)} written; run again for the rest (it skips those)",
            file=sys.stderr,
        )
        return exit_status(interrupt)
    finally:
        remove_empty_folders(created)
    if tally.failed:
        print(f"{tally.summary()}: " + "; ".join(error for _, error in tally.failed), file=sys.stderr)
        return 1
    print(tally.summary())
    return 0


def run_serve() -> int:
    """The --serve page, with the model loaded once and the same enlarging settings as --input."""
    import importlib.util

    if importlib.util.find_spec("flask") is None:
        raise UsageError("--serve needs Flask: pip install 'vdsr-tf[web]' (from a clone: pip install '.[web]')")
    import numpy as np

    from vdsr_tf.infer import check_scale
    from vdsr_tf.web import create_app, listening_socket, serve

    _check_tile_and_quality()
    scale = check_scale(FLAGS.scale)
    if not 0 <= FLAGS.port <= 65535:
        raise UsageError(f"--port must lie in [0, 65535], got {FLAGS.port}")
    try:
        listening = listening_socket(FLAGS.host, FLAGS.port)
    except OSError as error:
        raise UsageError(listen_error(error, FLAGS.host, FLAGS.port)) from None
    with listening:
        model, _ = _load_checkpoint("auto")
        from vdsr_tf.model import conv_layers, make_predictor

        predict = make_predictor(model)
        predict(np.zeros((64, 64), np.float32))  # the one trace, done before the first photo rather than during it
        app = create_app(
            predict,
            margin=len(conv_layers(model)),
            tile=FLAGS.tile,
            requested_format=FLAGS.format,
            quality=FLAGS.quality,
            scale=scale,
            host=FLAGS.host,
        )
        serve(app, listening, host=FLAGS.host, open_browser=FLAGS.open_browser)
    return 0


def listen_error(error: OSError, host: str, port: int) -> str:
    """The one-line error for a server that cannot listen, naming the flag at fault: --host or --port."""
    reason = error.strerror or str(error)
    if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
        return f"--host: cannot listen on {host} ({reason}); give an address of this machine, such as 127.0.0.1"
    return f"--port: cannot listen on {host}:{port} ({reason}); choose another port"


SAVED_MODEL_ENTRIES = {"saved_model.pb", "saved_model.pbtxt", "fingerprint.pb", "variables", "assets", "assets.extra"}


def _check_export_folder(folder: str) -> None:
    """--overwrite replaces a SavedModel, never a folder holding anything else (the checkpoint folder, say)."""
    require_folder("export_saved_model", folder)
    extension = os.path.splitext(folder)[1]
    if extension.lower() in (".onnx", ".h5", ".pb", ".tflite"):
        raise UsageError(
            f"--export_saved_model writes a folder, not a {extension} file; give a folder's name"
            + (", or --export_onnx for ONNX" if extension.lower() == ".onnx" else "")
        )
    entries = set(os.listdir(folder)) - {".DS_Store"} if os.path.isdir(folder) else set()  # Finder's hidden file
    others = sorted(entries - SAVED_MODEL_ENTRIES)
    if others or (entries and "saved_model.pb" not in entries):
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise UsageError(
            f"--export_saved_model: {folder} holds files that are not a SavedModel's ({shown or 'no saved_model.pb'});"
            " give a new or empty folder"
        )
    if entries and not FLAGS.overwrite:
        raise UsageError(f"--export_saved_model: {folder} holds a SavedModel (use --overwrite to replace it)")


def run_export() -> None:
    _check_export_folder(FLAGS.export_saved_model)
    model, _ = _load_checkpoint("float32")
    from vdsr_tf.export import export_saved_model

    try:
        export_saved_model(model, FLAGS.export_saved_model)
    except OSError as error:
        raise UsageError(f"--export_saved_model: cannot write {FLAGS.export_saved_model} ({error.strerror})") from None
    logging.info("wrote the SavedModel to %s", FLAGS.export_saved_model)


def run_training() -> int:
    """The flags are checked (as a TrainConfig of float32) before TensorFlow loads; then the precision is resolved."""
    from vdsr_tf.config import TrainConfig
    from vdsr_tf.images import dataset_paths

    config = TrainConfig(
        train_h5=FLAGS.train_h5,
        checkpoint_dir=FLAGS.checkpoint_dir,
        log_dir=FLAGS.tensorboard_dir,
        validation_paths=tuple(dataset_paths(_data_dir(), FLAGS.validation_dataset, flag="--validation_dataset")),
        depth=FLAGS.depth or 20,
        width=FLAGS.width,
        residual=FLAGS.residual,
        lr=FLAGS.lr,
        lr_decay_epochs=FLAGS.lr_decay_epochs,
        epochs=FLAGS.epochs,
        steps_per_epoch=FLAGS.steps_per_epoch,
        batch_size=FLAGS.batch_size,
        optimizer=FLAGS.optimizer,
        momentum=FLAGS.momentum,
        weight_decay=FLAGS.weight_decay,
        grad_clip=FLAGS.grad_clip,
        clip=FLAGS.clip,
        bias_lr_scale=FLAGS.bias_lr_scale,
        restart=FLAGS.restart,
        max_steps=FLAGS.max_steps,
        validate_every=FLAGS.validate_every,
        save_every_minutes=FLAGS.save_every_minutes,
        keep_epoch_weights=FLAGS.keep_epoch_weights,
        seed=FLAGS.seed,
        init_weights=FLAGS.init_weights,
    )
    if not os.path.isfile(FLAGS.train_h5):
        raise UsageError(
            f"--train_h5: no file {FLAGS.train_h5}; make it with "
            f"python data/generate_dataset/generate_train.py --output={FLAGS.train_h5}"
        )
    config = dataclasses.replace(config, precision=_precision("auto"))
    from vdsr_tf.train import TrainingStopped, train

    try:
        train(config)
    except TrainingStopped as stop:
        again = "the same command without --restart" if FLAGS.restart else "the same command"
        print(f"{stop}: {again} continues from there", file=sys.stderr)
        return 128 + stop.signum  # as a shell reports a process a signal ended, so `train && evaluate` stops
    return 0


def run_export_onnx() -> None:
    from vdsr_tf.onnx_export import vdsr_onnx, write_onnx

    path = FLAGS.export_onnx
    if os.path.isdir(path):
        raise UsageError(f"--export_onnx: {path} is a folder; give a file name, say {os.path.join(path, 'vdsr.onnx')}")
    if os.path.exists(path) and not FLAGS.overwrite:
        raise UsageError(f"--export_onnx: {path} exists (use --overwrite to replace it)")
    require_folder("export_onnx", os.path.dirname(os.path.abspath(path)))
    model, attributes = _load_checkpoint(None)
    from vdsr_tf.model import conv_layers

    metadata = {key: attributes[key] for key in ("source", "step") if key in attributes}
    weights = [layer.get_weights() for layer in conv_layers(model)]
    onnx_model = vdsr_onnx(weights, residual=bool(attributes["residual"]), metadata=metadata)
    try:
        write_onnx(onnx_model, path)
    except OSError as error:
        raise UsageError(f"--export_onnx: cannot write {path} ({error.strerror})") from None
    logging.info("wrote %s: float32 Y (N, 1, H, W) in [0, 1] -> Y, opset %d", path, onnx_model.opset_import[0].version)


# Each mode flag and what it runs; with none of them set, --is_train picks training or evaluation.
MODES = {
    "import_matconvnet": run_import,
    "average_weights": run_average,
    "export_saved_model": run_export,
    "export_onnx": run_export_onnx,
    "input": run_enlarge,
    "serve": run_serve,
}


NAMES_A_THING = (
    "data_dir",
    "test_datasets",
    "scales",
    "results_json",
    "save_images",
    "output",
    "train_h5",
    "tensorboard_dir",
    "validation_dataset",
    "init_weights",
    "checkpoint_dir",
)  # flags for which an empty value would silently mean their default, or nothing


def _check_mode_flags() -> None:
    """One mode per run. An empty mode flag (say `--input=$FILES` with FILES unset) would otherwise fall
    through to evaluation, and a second one would be silently ignored (`--is_train=True --input=x.png`
    would enlarge x.png and train nothing)."""
    for name in (*MODES, *NAMES_A_THING):
        value = FLAGS[name].value
        if FLAGS[name].present and not value and not isinstance(value, bool):
            raise UsageError(f"--{name}: give a value; it is empty")
    modes = [f"--{name}" for name in MODES if FLAGS[name].value] + ["--is_train"] * FLAGS.is_train
    if len(modes) > 1:
        raise UsageError(f"{' and '.join(modes)}: give one mode at a time")
    _check_scale_flags(enlarging=bool(FLAGS.input or FLAGS.serve), evaluating=not modes, training=FLAGS.is_train)


def _check_scale_flags(*, enlarging: bool, evaluating: bool, training: bool) -> None:
    """--scale (enlarging, any real factor) and --scales (evaluating) differ by one letter: the other
    mode's flag would be silently unused (`--input=photo.jpg --scales=3` would enlarge x2)."""
    if enlarging and FLAGS["scales"].present:
        raise UsageError(f"--scales is for evaluation; to enlarge by {FLAGS.scales[0]}, give --scale={FLAGS.scales[0]}")
    if training and (FLAGS["scales"].present or FLAGS["scale"].present):
        name = "--scales" if FLAGS["scales"].present else "--scale"
        raise UsageError(f"{name}: training validates at x2, x3 and x4, the columns of its record; drop {name}")
    if evaluating and FLAGS["scale"].present:
        advice = f" (say --scales={FLAGS.scale:g})" if float(FLAGS.scale).is_integer() else ""
        raise UsageError(f"--scale is for --input and --serve; evaluation takes --scales{advice}")


def _unexpected(arguments: list[str]) -> str:
    if any(argument.startswith("\ufeff") for argument in arguments):
        return "error: a --flagfile starts with a byte-order mark (an editor's 'UTF-8 with BOM'); save it without"
    if len(arguments) > 1:
        return (
            f"error: unexpected arguments {' '.join(arguments)}; --input takes one file, folder or glob "
            "(say --input='photos/*.jpg'); --help lists the flags"
        )
    argument = arguments[0]
    if os.path.exists(argument) or os.path.splitext(argument)[1] or glob.has_magic(argument):
        return f"error: unexpected argument {argument}; to enlarge it use --input={argument}"
    return f"error: unexpected argument {argument}; flags start with -- (--help lists them)"


class _PlainFormatter(python_logging.Formatter):
    """Our log lines as bare messages ('wrote x.png'), warnings and errors prefixed by their level."""

    def format(self, record: python_logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno <= python_logging.INFO else f"{record.levelname.lower()}: {text}"


def _ours_or_a_warning(record: python_logging.LogRecord) -> bool:
    """TensorFlow's Python code logs INFO lines through absl too ('Assets written to: ...')."""
    return record.levelno > python_logging.INFO or record.pathname.startswith(PACKAGE_DIR)


def _quiet_output() -> None:
    """At --verbosity 0 (the default) or below: our INFO lines without absl's prefix (level, time, thread,
    file), others' warnings and errors, and TensorFlow's C++ INFO and WARNING lines hidden unless
    TF_CPP_MIN_LOG_LEVEL is set already."""
    if FLAGS.verbosity > 0:
        return
    handler = logging.get_absl_handler()
    handler.setFormatter(_PlainFormatter())
    handler.addFilter(_ours_or_a_warning)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _import_tensorflow() -> None:
    """Imports TensorFlow without the start-up lines TF_CPP_MIN_LOG_LEVEL asks to hide.

    Each mode calls it once its own flags are checked, before its first module that imports TensorFlow,
    so that a mistyped flag is answered at once rather than after TensorFlow's seconds of start-up.

    TensorFlow 2.21 prints its oneDNN notice (an INFO line, twice) through absl before that level
    applies, so the level alone cannot hide it: the import runs with file descriptor 2 in a temporary
    file, whose lines are copied back to stderr except those of the levels hidden.
    """
    if "tensorflow" in sys.modules:
        return
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    hidden = "IWEF"[: int(level)] if level in ("1", "2", "3") else ""
    if not hidden:
        import tensorflow  # noqa: F401

        return
    # absl's C++ log line: level letter, MMDD hh:mm:ss.micros (before absl::InitializeLog, 0000 00:00:<epoch
    # seconds>), thread, file:line]
    pattern = re.compile(rf"[{hidden}]\d{{4}} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] |WARNING: All log messages before absl")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not pattern.match(line):
                    sys.stderr.write(line)


def _run_mode():
    for name, run_mode in MODES.items():
        if FLAGS[name].value:
            return run_mode()
    if FLAGS.is_train:
        return run_training()
    return run_evaluation()


def main(argv):
    if len(argv) > 1:
        sys.exit(_unexpected(argv[1:]))
    _quiet_output()
    try:
        if FLAGS["log_dir"].present:
            raise UsageError("--log_dir: the TensorBoard folder is --tensorboard_dir (--log_dir is absl's, unused)")
        _check_mode_flags()
        prefer_bfc_allocator()
        with stop_signals_interrupt():
            return _run_mode()
    except (ValueError, FloatingPointError, OSError) as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt as interrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(exit_status(interrupt))
    except Exception as error:
        tensorflow = sys.modules.get("tensorflow")
        if tensorflow is None or not isinstance(error, tensorflow.errors.OpError):
            raise
        lines = error.message.strip().splitlines() or [type(error).__name__]
        sys.exit(f"error: TensorFlow: {lines[0]}")


USAGE = """\
usage: vdsr [FLAGS]                          evaluate the checkpoint: the paper's Table 3
       vdsr --input=photo.jpg --scale=2      enlarge your own images into enlarged/
       vdsr --serve                          the same on a web page at http://127.0.0.1:8080/
       vdsr --is_train=True                  train (resumes from <checkpoint_dir>/state)
       vdsr --export_onnx=vdsr.onnx          write the network as ONNX
(`python main.py FLAGS` is the same command.)"""

# absl's own flags that are ours to document, and the two answered before absl parses.
GENERAL_FLAGS = (
    ("--flagfile=FILE", "Read flags from FILE, one a line (see configs/*.flags)."),
    (
        "--verbosity=N, -v N",
        "0 (default): our progress lines and any warning; 1: also TensorFlow's start-up and INFO lines and debug "
        "logs, with absl's prefix (level, time, file); -1: warnings and errors only.",
    ),
    ("--help", "This list, then exit."),
    ("--helpfull", "Every flag, absl's own too, then exit."),
    ("--version", "Print the version, then exit."),
)


def _flag_help(name: str, text: str) -> str:
    return f"  {name}\n" + textwrap.fill(text, width=100, initial_indent=" " * 6, subsequent_indent=" " * 6)


def _default(flag) -> str:
    if flag.default is None:
        return ""
    value = ",".join(flag.default) if isinstance(flag.default, list) else flag.default
    return f" (default: {value})"


def help_text() -> str:
    """--help: this module's flags under the titles of HELP_SECTIONS, in the order they are defined."""
    own = _own_flags()
    lines = [f"vdsr {__version__}: VDSR super-resolution (Kim, Lee, Lee, CVPR 2016) in TensorFlow/Keras.", "", USAGE]
    ends = [start for _, start in HELP_SECTIONS[1:]] + [len(own)]
    for (title, start), end in zip(HELP_SECTIONS, ends):
        lines += ["", f"{title}:"]
        lines += [_flag_help(f"--{flag.name}{_default(flag)}", flag.help) for flag in own[start:end]]
    lines += [_flag_help(name, text) for name, text in GENERAL_FLAGS]
    return "\n".join(lines)


HELP_ARGUMENTS = ("-h", "-help", "--help", "-?", "-helpshort", "--helpshort")


def run() -> None:
    """The `vdsr` console script and main.py. --help, --helpfull and --version are answered before absl
    parses the flags: absl's --help exits with status 1 and lists its own flags among ours."""
    arguments = sys.argv[1:]
    if "--" in arguments:
        arguments = arguments[: arguments.index("--")]
    if any(argument in HELP_ARGUMENTS for argument in arguments):
        print(help_text())
    elif "--helpfull" in arguments or "-helpfull" in arguments:
        print(FLAGS.get_help())
    elif "--version" in arguments or "-version" in arguments:
        print(f"vdsr {__version__}")
    else:
        from vdsr_tf.images import allow_large_pictures

        allow_large_pictures()
        app.run(main, flags_parser=_parse_flags)
    sys.exit(0)


def _parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, which reads each --flagfile, with its error in one line (absl's own says FATAL and
    adds a second) and a line for a flagfile that is not UTF-8."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        message = " ".join(str(error).removeprefix("ERROR:: ").split())
        sys.exit(f"error: {message} (vdsr --help lists the flags)")
    except UnicodeDecodeError:
        files = [argument.split("=", 1)[1] for argument in argv if argument.startswith(("--flagfile=", "-flagfile="))]
        sys.exit(f"error: --flagfile: {', '.join(files)} (or a file it reads) is not UTF-8 text; save it as UTF-8")
