"""The training record: `training_record.json` beside the weights, one file a run carries along.

{"steps": N, "wall_seconds": s, "config": {...the TrainConfig...},
 "learning_rate": [{"from_step", "lr", "optimizer"}, ...],
 "validation": [{"step", "psnr_x2", ...}, ...],
 "training_loss": [{"step", "loss_over_bicubic"}, ...]}
Rows are in step order; a resumed run cuts the rows after its restored step,
so the record always describes the weights saved beside it.
"""

import json
import os
import time

from absl import logging

from vdsr_tf.atomic import unused_path, write_json

RECORD_NAME = "training_record.json"
ROW_LISTS = ("learning_rate", "validation", "training_loss")


def new_record() -> dict:
    return {"steps": 0, "wall_seconds": 0.0, "learning_rate": [], "validation": [], "training_loss": []}


def _check_record(record) -> None:
    """Raises ValueError unless `record` has the shape `new_record` gives it (a resume would trip over it)."""
    if not isinstance(record, dict) or not isinstance(record.get("config", {}), dict):
        raise ValueError("not a training record")
    for key in ("steps", "wall_seconds"):
        if not isinstance(record.get(key, 0), (int, float)) or isinstance(record.get(key), bool):
            raise ValueError(f"{key} is not a number")
    for name in ROW_LISTS:
        rows, step_key = record.get(name, []), "from_step" if name == "learning_rate" else "step"
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            raise ValueError(f"{name} is not a list of rows")
        for row in rows:
            values = [value for key, value in row.items() if key != "optimizer"]
            if not isinstance(row.get(step_key), int) or not all(isinstance(v, (int, float)) for v in values):
                raise ValueError(f"a row of {name} is not {step_key} and numbers")
    curves = [sorted(key for key in row if key.startswith("psnr_")) for row in record.get("validation", [])]
    if curves and (not curves[0] or any(keys != curves[0] for keys in curves)):
        raise ValueError("the validation rows do not share their psnr_x* values")


def read_record(path: str) -> dict | None:
    """The record at `path`; None if there is none. A damaged one is set aside as `<path>.damaged-<time>`, logged."""
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as file:
            record = json.load(file)
        _check_record(record)
    except (OSError, ValueError) as error:
        kept = unused_path(f"{path}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, kept)
        logging.warning("%s: unreadable (%s); kept as %s, a new record starts", path, error, kept)
        return None
    return record


def recorded_recipe(path: str) -> dict:
    """The optimizer and batch size of the run whose record this is, as far as the record says.

    A record from before `--optimizer` existed is of SGD; without a record, or without a batch
    size in it, nothing is known of them.
    """
    record = read_record(path) if os.path.isfile(path) else None
    if record is None:
        return {}
    config = record.get("config", {})
    recipe = {"optimizer": config.get("optimizer", "sgd")}
    if "batch_size" in config:
        recipe["batch_size"] = config["batch_size"]
    return recipe


# Settings a resume may change, each said in the log (the data order follows from seed and step).
_LOGGED_CHANGES = (
    "precision", "clip", "bias_lr_scale", "lr", "lr_decay_epochs", "epochs", "momentum", "weight_decay", "grad_clip",
    "seed", "train_h5",
)  # fmt: skip
_DEFAULTS_BEFORE = {"precision": "float32", "clip": "value", "bias_lr_scale": 1.0}  # records older than these keys


def load_record(paths: list[str], step: int, config: dict) -> dict:
    """The first readable record among `paths`, cut back to `step`, with `config`; else a new one."""
    record = new_record()
    for path in paths:
        found = read_record(path)
        if found is not None:
            record.update(found)
            break
    record["validation"] = [row for row in record["validation"] if row["step"] <= step]
    record["training_loss"] = [row for row in record["training_loss"] if row["step"] <= step]
    record["learning_rate"] = [row for row in record["learning_rate"] if row["from_step"] < step]
    previous = record.get("config") or {}
    for key in _LOGGED_CHANGES:
        before = previous.get(key, _DEFAULTS_BEFORE.get(key, config.get(key)))
        if step and before != config.get(key):
            logging.info("%s changes from %s to %s at step %d", key, before, config.get(key), step)
    record["config"] = config
    return record


def note_learning_rate(record: dict, step: int, learning_rate: float, optimizer: str) -> None:
    """Adds a schedule row when the learning rate or the optimizer changes at `step`."""
    row = {"from_step": step, "lr": learning_rate, "optimizer": optimizer}
    rows = record["learning_rate"]
    if not rows or any(rows[-1].get(key, "sgd") != row[key] for key in ("lr", "optimizer")):
        rows.append(row)


def has_row(record: dict, name: str, step: int) -> bool:
    return any(row["step"] == step for row in record[name])


def save_record(record: dict, path: str) -> None:
    write_json(path, record)
