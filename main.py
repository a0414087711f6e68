"""VDSR in TensorFlow/Keras: the command line. Parses flags and dispatches.

python main.py --is_train=True                         # train (resumes if a state exists)
python main.py --is_train=False                        # evaluate: the paper's Table 3
python main.py --import_matconvnet=../shared/reference/VDSR_Official.mat --checkpoint_dir=DIR
python main.py --input=photo.jpg --scale=2.5 --output=enlarged/   # enlarge your own images
python main.py --export_saved_model=DIR                            # TF Serving model
python main.py --average_weights='runs/adam/weights/*.h5' --checkpoint_dir=DIR   # weight averaging
"""

import glob
import os
import sys

from absl import app, flags, logging

from vdsr_tf.paths import WEIGHTS_NAME, default_data_dir

PAPER_DATASETS = ("Set5", "Set14", "B100", "Urban100")

flags.DEFINE_bool("is_train", False, "Train (True) or evaluate (False).")
flags.DEFINE_string(
    "checkpoint_dir", "checkpoints", "Folder of vdsr.h5 (weights) and, when training, state/ and the training record."
)
flags.DEFINE_string(
    "data_dir",
    None,
    "Folder holding test/<dataset>/ and train/ (default: ../shared/datasets if present, else data/datasets).",
)
flags.DEFINE_integer(
    "depth",
    None,
    "Network depth (paper: 20). Training default 20; evaluation checks the checkpoint against it when given.",
)
flags.DEFINE_enum(
    "precision",
    None,
    ["auto", "float32", "bfloat16"],
    "Arithmetic of the network. auto: bfloat16 where the CPU or GPU has bfloat16 units (amx_bf16, avx512_bf16, "
    "GPU 8.0+), else float32. bfloat16: the middle 18 layers in bfloat16, first, last and the add in float32 "
    "(2-5x faster on such machines). Default: float32 for evaluation (Table 3 exactly) and --export_saved_model, "
    "auto for training and --input.",
)
flags.DEFINE_integer("width", 64, "Filters per hidden layer (paper: 64).")
flags.DEFINE_bool(
    "residual", True, "Residual learning: output = input + network (paper); False for the paper's Table 1 baseline."
)
flags.DEFINE_string(
    "import_matconvnet", None, "Convert the authors' VDSR_Official.mat into <checkpoint_dir>/vdsr.h5 and exit."
)
flags.DEFINE_list(
    "average_weights",
    None,
    "Weights files or globs (say a run's weights/vdsr_*.h5 from --keep_epoch_weights): write their mean to "
    "<checkpoint_dir>/vdsr.h5 and exit.",
)
# Evaluation.
flags.DEFINE_list(
    "test_datasets",
    None,
    "Datasets under <data_dir>/test to evaluate (default: those of Set5, Set14, B100, Urban100 present).",
)
flags.DEFINE_list("scales", ["2", "3", "4"], "Scales to evaluate (integers of at least 2).")
flags.DEFINE_string("results_json", None, "Also write the evaluation rows to this JSON file.")
flags.DEFINE_string("save_images", None, "Folder to write the super-resolved Y images to, as PNG.")
# Enlarging one's own images.
flags.DEFINE_string("input", None, "Image file, folder or glob to enlarge (instead of evaluating).")
flags.DEFINE_float("scale", 2.0, "Enlargement factor for --input: any real number in (1, 8].")
flags.DEFINE_string("output", "enlarged", "Folder for the enlarged images (<name>_x<scale>.<ext>).")
flags.DEFINE_enum(
    "format",
    None,
    ["png", "jpeg", "jpg", "webp", "bmp", "tiff"],
    "Output format (default: the input's; PNG for 16-bit input).",
)
flags.DEFINE_integer("tile", 512, "Tile side for inference on large images; bounds memory (~0.4 GB at 512).")
flags.DEFINE_bool("overwrite", False, "Replace existing output files.")
flags.DEFINE_string(
    "export_saved_model",
    None,
    "Write a TensorFlow SavedModel (RGB uint8 image, scale -> RGB uint8) to this folder and exit.",
)
# Training.
flags.DEFINE_string("train_h5", "data/train.h5", "Patch file from data/generate_dataset/generate_train.py.")
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
    ["sgd", "adam"],
    "sgd: the paper's SGD with momentum and adjustable clipping. adam: Adam at --lr, unclipped (not the paper's; "
    "for continuing from the paper schedule's weights, see README).",
)
flags.DEFINE_float("momentum", 0.9, "SGD momentum (paper: 0.9).")
flags.DEFINE_float("weight_decay", 1e-4, "L2 weight decay on the kernels (paper: 1e-4).")
flags.DEFINE_float(
    "grad_clip",
    1e-4,
    "theta of the adjustable gradient clipping: elements are clipped to +-theta/lr. The paper gives no value; "
    "1e-3 let the early steps kill most ReLUs here (see README), 1e-4 trains.",
)
flags.DEFINE_integer("max_steps", 0, "Stop after this many steps in this run (0: run the whole schedule).")
flags.DEFINE_integer("validate_every", 0, "Also validate every this many steps (0: only at epoch ends).")
flags.DEFINE_float("save_every_minutes", 5.0, "Save the training state at least this often.")
flags.DEFINE_bool(
    "keep_epoch_weights", False, "Also keep each epoch end's weights as <checkpoint_dir>/weights/vdsr_<step>.h5."
)
flags.DEFINE_integer("seed", 123, "Seed of weight initialisation and data order.")
flags.DEFINE_string(
    "init_weights", None, "Start from this vdsr.h5 (and its step) when checkpoint_dir holds no training state."
)
FLAGS = flags.FLAGS


class UsageError(ValueError):
    """A flag value that cannot work."""


def _scales(values: list[str]) -> list[int]:
    try:
        scales = [int(value) for value in values]
    except ValueError:
        raise UsageError(f"--scales: expected integers, got {','.join(values)}") from None
    if not scales or min(scales) < 2:
        raise UsageError(f"--scales: every scale must be an integer of at least 2, got {','.join(values)}")
    return scales


def _data_dir() -> str:
    data_dir = FLAGS.data_dir or default_data_dir()
    if not os.path.isdir(data_dir):
        raise UsageError(
            f"--data_dir: no data folder {data_dir}; put the datasets there or pass --data_dir (see README, 'Data')"
        )
    return data_dir


def _test_datasets(data_dir: str) -> list[str]:
    if FLAGS.test_datasets:
        return FLAGS.test_datasets
    present = [name for name in PAPER_DATASETS if os.path.isdir(os.path.join(data_dir, "test", name))]
    if not present:
        raise UsageError(f"--data_dir: none of {', '.join(PAPER_DATASETS)} under {data_dir}/test")
    return present


def _precision(default: str) -> str:
    """--precision (or `default` when not given) resolved for this machine, and said in the log."""
    from vdsr_tf.precision import gpu_bf16, native_bf16, resolve_precision

    precision, why = resolve_precision(FLAGS.precision or default, reason=native_bf16(gpu=gpu_bf16()))
    logging.info("precision: %s", why)
    return precision


def _weights_path() -> str:
    return os.path.join(FLAGS.checkpoint_dir, WEIGHTS_NAME)


def _refuse_to_replace_weights() -> None:
    if os.path.exists(_weights_path()) and not FLAGS.overwrite:
        raise UsageError(f"--checkpoint_dir: {_weights_path()} exists (use --overwrite to replace it)")


def _write_weights(weights: list, *, source: str, residual: bool, metadata: dict) -> None:
    """Writes (kernel, bias) pairs as <checkpoint_dir>/vdsr.h5, checked against the network they describe."""
    from vdsr_tf.model import build_vdsr, save_weights, set_conv_weights

    model = build_vdsr(depth=len(weights), width=weights[0][0].shape[-1], residual=residual)
    set_conv_weights(model, weights, source=source)
    save_weights(model, _weights_path(), residual=residual, metadata=metadata)


def run_import() -> None:
    from vdsr_tf.official_weights import read_matconvnet

    mat_path = FLAGS.import_matconvnet
    _refuse_to_replace_weights()
    weights = read_matconvnet(mat_path)
    metadata = {"source": f"imported from {os.path.basename(mat_path)}"}
    _write_weights(weights, source=mat_path, residual=True, metadata=metadata)
    logging.info("wrote %s from %s", _weights_path(), mat_path)


def run_average() -> None:
    from vdsr_tf.model import average_weights

    paths = []
    for pattern in FLAGS.average_weights:
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise UsageError(f"--average_weights: no file matches {pattern}")
        paths.extend(matches)
    _refuse_to_replace_weights()
    weights, attributes = average_weights(paths)
    metadata = {key: attributes[-1][key] for key in ("source", "train_h5") if key in attributes[-1]}
    steps = [int(file_attributes["step"]) for file_attributes in attributes if "step" in file_attributes]
    if len(steps) == len(paths):
        metadata.update(step=max(steps), averaged_steps=steps)
    _write_weights(weights, source=paths[-1], residual=bool(attributes[-1]["residual"]), metadata=metadata)
    logging.info("wrote %s, the mean of %d weights files", _weights_path(), len(paths))


def run_evaluation() -> None:
    from vdsr_tf.evaluate import evaluate, format_table
    from vdsr_tf.train import write_json

    scales = _scales(FLAGS.scales)
    data_dir = _data_dir()
    model, attributes = _load_checkpoint(_precision("float32"))
    logging.info(
        "evaluating %s (%s, step %s)", _weights_path(), attributes.get("source", "?"), attributes.get("step", "-")
    )
    rows = evaluate(
        model, data_dir=data_dir, datasets=_test_datasets(data_dir), scales=scales, save_dir=FLAGS.save_images
    )
    print(format_table(rows))
    if FLAGS.results_json:
        write_json(FLAGS.results_json, rows)


def _load_checkpoint(precision: str):
    from vdsr_tf.model import load_vdsr

    if not os.path.isfile(_weights_path()):
        raise UsageError(
            f"--checkpoint_dir: no checkpoint {_weights_path()}; train one (--is_train=True) or import the "
            "official weights (--import_matconvnet=../shared/reference/VDSR_Official.mat)"
        )
    return load_vdsr(_weights_path(), expected_depth=FLAGS.depth, precision=precision)


def _writable_folder(folder: str, flag: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{flag}: cannot create {folder} ({error.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag}: {folder} is not writable")


def run_enlarge() -> int:
    from vdsr_tf.evaluate import make_predictor
    from vdsr_tf.infer import check_scale, enlarge_files, expand_inputs
    from vdsr_tf.model import conv_layers

    scale = check_scale(FLAGS.scale)
    if FLAGS.tile < 16:
        raise UsageError(f"--tile must be at least 16, got {FLAGS.tile}")
    paths = expand_inputs(FLAGS.input)
    model, _ = _load_checkpoint(_precision("auto"))
    _writable_folder(FLAGS.output, "--output")
    failures = enlarge_files(
        paths,
        out_dir=FLAGS.output,
        scale=scale,
        predict=make_predictor(model),
        tile=FLAGS.tile,
        margin=len(conv_layers(model)),
        requested_format=FLAGS.format,
        overwrite=FLAGS.overwrite,
    )
    if failures:
        print(
            f"{len(paths) - len(failures)} of {len(paths)} images enlarged; failed: "
            + "; ".join(error for _, error in failures),
            file=sys.stderr,
        )
        return 1
    return 0


def run_export() -> None:
    from vdsr_tf.export import export_saved_model

    model, _ = _load_checkpoint(_precision("float32"))
    if os.path.exists(FLAGS.export_saved_model) and os.listdir(FLAGS.export_saved_model) and not FLAGS.overwrite:
        raise UsageError(f"--export_saved_model: {FLAGS.export_saved_model} is not empty (use --overwrite)")
    export_saved_model(model, FLAGS.export_saved_model)
    logging.info("wrote the SavedModel to %s", FLAGS.export_saved_model)


def run_training() -> None:
    from vdsr_tf.evaluate import dataset_paths
    from vdsr_tf.train import TrainConfig, train

    for name in ("lr", "grad_clip"):
        if getattr(FLAGS, name) <= 0:
            raise UsageError(f"--{name} must be positive, got {getattr(FLAGS, name)}")
    if not 0 <= FLAGS.momentum < 1:
        raise UsageError(f"--momentum must lie in [0, 1), got {FLAGS.momentum}")
    if FLAGS.weight_decay < 0:
        raise UsageError(f"--weight_decay must not be negative, got {FLAGS.weight_decay}")
    for name in ("batch_size", "epochs", "steps_per_epoch", "lr_decay_epochs"):
        if getattr(FLAGS, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(FLAGS, name)}")
    if not os.path.isfile(FLAGS.train_h5):
        raise UsageError(
            f"--train_h5: no file {FLAGS.train_h5}; make it with "
            f"python data/generate_dataset/generate_train.py --output={FLAGS.train_h5}"
        )
    config = TrainConfig(
        train_h5=FLAGS.train_h5,
        checkpoint_dir=FLAGS.checkpoint_dir,
        # --log_dir is absl.logging's own flag (it writes no file here unless asked); it names the
        # TensorBoard folder, "logs" when not given.
        log_dir=FLAGS.log_dir or "logs",
        validation_paths=tuple(dataset_paths(_data_dir(), FLAGS.validation_dataset)),
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
        max_steps=FLAGS.max_steps,
        validate_every=FLAGS.validate_every,
        save_every_minutes=FLAGS.save_every_minutes,
        keep_epoch_weights=FLAGS.keep_epoch_weights,
        seed=FLAGS.seed,
        init_weights=FLAGS.init_weights,
        precision=_precision("auto"),
    )
    train(config)


# Each mode flag and what it runs; with none of them set, --is_train picks training or evaluation.
MODES = {
    "import_matconvnet": run_import,
    "average_weights": run_average,
    "export_saved_model": run_export,
    "input": run_enlarge,
}


def _check_mode_flags() -> None:
    """One mode per run. An empty mode flag (say `--input=$FILES` with FILES unset) would otherwise fall
    through to evaluation, and a second one would be silently ignored (`--is_train=True --input=x.png`
    would enlarge x.png and train nothing)."""
    for name in MODES:
        value = FLAGS[name].value
        if value is not None and not value:
            raise UsageError(f"--{name}: give a value; it is empty")
    modes = [f"--{name}" for name in MODES if FLAGS[name].value] + ["--is_train"] * FLAGS.is_train
    if len(modes) > 1:
        raise UsageError(f"{' and '.join(modes)}: give one mode at a time")


def main(argv):
    if len(argv) > 1:
        sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}")
    try:
        _check_mode_flags()
        for name, run_mode in MODES.items():
            if FLAGS[name].value:
                return run_mode()
        if FLAGS.is_train:
            run_training()
        else:
            run_evaluation()
    except (ValueError, FloatingPointError) as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    app.run(main)
