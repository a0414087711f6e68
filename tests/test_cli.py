"""vdsr_tf/cli.py as a user meets it: --help, --version, stray arguments, quiet start-up, the default
weights from any folder, and the installable `vdsr` command (pyproject.toml)."""

import os
import re
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import onnx
import pytest
from helpers import ROOT, last_line, run_main
from PIL import Image

import vdsr_tf
from vdsr_tf import paths

CLI_SOURCE = os.path.join(ROOT, "vdsr_tf", "cli.py")


def own_flag_names() -> list[str]:
    with open(CLI_SOURCE) as file:
        return re.findall(r'flags\.DEFINE_\w+\(\s*"(\w+)"', file.read())


def test_help_exits_0_and_lists_every_own_flag_by_mode():
    result = run_main("--help")
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    titles = ["Evaluate", "Enlarge your own images", "Train", "Export", "Other:"]
    positions = [text.index(f"\n{title}") for title in titles]
    assert positions == sorted(positions)
    names = own_flag_names()
    assert len(names) > 30 and "tensorboard_dir" in names and "export_onnx" in names
    for name in names:
        assert re.search(rf"^  --{name}\b", text, re.M), name

    def section_of(flag):
        start = re.search(rf"\n  --{flag}[ \n]", text).start()
        return max((position, title) for position, title in zip(positions, titles) if position < start)[1]

    assert section_of("scales") == "Evaluate" and section_of("scale") == "Enlarge your own images"
    assert section_of("grad_clip") == "Train" and section_of("export_onnx") == "Export"
    # absl's own flags stay under --helpfull; --log_dir is absl's, not our TensorBoard folder.
    for absl_flag in ("--log_dir", "--logtostderr", "--pdb_post_mortem", "--only_check_args"):
        assert absl_flag not in text
    assert "--verbosity" in text and "--flagfile" in text and "--version" in text


@pytest.mark.parametrize("flag", ["-h", "--helpshort"])
def test_help_spellings(flag):
    result = run_main(flag)
    assert result.returncode == 0 and "--export_onnx" in result.stdout


def test_helpfull_lists_absl_flags_and_exits_0():
    result = run_main("--helpfull")
    assert result.returncode == 0 and "logtostderr" in result.stdout and "--tensorboard_dir" in result.stdout


def test_version():
    assert re.fullmatch(r"\d+\.\d+\.\d+", vdsr_tf.__version__)
    result = run_main("--version")
    assert result.returncode == 0 and result.stdout == f"vdsr {vdsr_tf.__version__}\n"


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["photo.jpg"], "error: unexpected argument photo.jpg; to enlarge it use --input=photo.jpg"),
        (["--scale=3", "photo.jpg"], "error: unexpected argument photo.jpg; to enlarge it use --input=photo.jpg"),
        (["evaluate"], "error: unexpected argument evaluate; flags start with -- (--help lists them)"),
        (["a.png", "b.png"], "error: unexpected arguments a.png b.png; --input takes one file, folder or glob"),
    ],
)
def test_stray_arguments_are_one_line(arguments, expected):
    result = run_main(*arguments)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and last_line(result).startswith(expected)


def test_log_dir_is_refused_for_tensorboard_dir(tmp_path):
    result = run_main(f"--log_dir={tmp_path / 'logs'}", f"--checkpoint_dir={tmp_path / 'none'}")
    assert result.returncode != 0 and "--log_dir" in last_line(result) and "--tensorboard_dir" in last_line(result)


def test_no_config_uses_log_dir():
    for name in os.listdir(os.path.join(ROOT, "configs")):
        with open(os.path.join(ROOT, "configs", name)) as file:
            assert "--log_dir" not in file.read(), name


@pytest.fixture
def tiny_image(tmp_path):
    path = tmp_path / "tiny.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(path)
    return path


def test_default_verbosity_hides_tensorflow_start_up_lines(tiny_image, checkpoint_dir, tmp_path):
    flags = [f"--input={tiny_image}", f"--checkpoint_dir={checkpoint_dir}", "--precision=float32"]
    quiet = run_main(*flags, f"--output={tmp_path / 'a'}", environment={"TF_CPP_MIN_LOG_LEVEL": None})
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    lines = quiet.stderr.replace("\r", "\n").splitlines()
    # Our INFO lines, bare; nothing of TensorFlow's C++ start-up (oneDNN notice, CPU-feature notice).
    assert "precision: float32 as asked" in lines
    assert f"wrote {tmp_path / 'a' / 'tiny_x2.png'}" in lines
    assert not [line for line in lines if re.match(r"[IW]\d{4} |WARNING: All log messages", line)]
    loud = run_main(*flags, f"--output={tmp_path / 'b'}", "--verbosity=1", environment={"TF_CPP_MIN_LOG_LEVEL": None})
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert re.search(r"^I\d{4} .*\] precision: ", loud.stderr, re.M)  # absl's prefix is back
    if not re.search(r"^I\d{4} \S+ +\d+ (port|cpu_feature_guard)\.cc:", loud.stderr, re.M):
        pytest.skip("this TensorFlow prints no C++ start-up line here to hide")


def test_default_verbosity_hides_tensorflows_python_info_lines(checkpoint_dir, tmp_path):
    # tf.saved_model.save logs 'Assets written to: ...' and 'Writing fingerprint to ...' through absl at INFO.
    saved = tmp_path / "saved"
    result = run_main(f"--checkpoint_dir={checkpoint_dir}", f"--export_saved_model={saved}")
    assert result.returncode == 0, result.stderr[-2000:]
    from vdsr_tf.precision import gpu_bf16, native_bf16

    reason = native_bf16(gpu=gpu_bf16())  # the line names the bfloat16 units only where the machine has them
    assert result.stderr.splitlines() == [
        "precision: float32, this mode's default"
        + (f" (--precision=auto would use bfloat16: {reason})" * bool(reason)),
        f"wrote the SavedModel to {saved}",
    ]


def test_shipped_weights_are_found_from_any_folder(tmp_path):
    onnx_path = tmp_path / "vdsr.onnx"
    result = run_main(f"--export_onnx={onnx_path}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len([node for node in onnx.load(str(onnx_path)).graph.node if node.op_type == "Conv"]) == 20


def test_a_checkpoints_folder_in_the_current_folder_comes_first(checkpoint_dir, tmp_path):
    checkpoint_dir.rename(tmp_path / "checkpoints")
    result = run_main("--export_onnx=small.onnx", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len([node for node in onnx.load(str(tmp_path / "small.onnx")).graph.node if node.op_type == "Conv"]) == 3


def test_default_checkpoint_dir_order(tmp_path, monkeypatch):
    installed = tmp_path / "site" / "weights"
    monkeypatch.setattr(paths, "INSTALLED_WEIGHTS_DIR", str(installed))
    monkeypatch.chdir(tmp_path)
    assert paths.default_checkpoint_dir() == os.path.join(paths.ROOT, "checkpoints")  # a source checkout
    installed.mkdir(parents=True)
    (installed / "vdsr.h5").write_bytes(b"")
    assert paths.default_checkpoint_dir() == str(installed)  # pip install .
    (tmp_path / "checkpoints").mkdir()  # a folder of that common name, without weights, hides nothing
    assert paths.default_checkpoint_dir() == str(installed)
    (tmp_path / "checkpoints" / "vdsr.h5").write_bytes(b"")
    assert paths.default_checkpoint_dir() == "checkpoints"


def test_an_installed_package_looks_for_data_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "SHARED_DATA_DIR", str(tmp_path / "none"))
    monkeypatch.setattr(paths, "EMBEDDED_DATA_DIR", str(tmp_path / "site-packages" / "data" / "datasets"))
    assert paths.default_data_dir() == os.path.join("data", "datasets")


def test_missing_checkpoint_says_where_weights_come_from(tmp_path):
    result = run_main(f"--checkpoint_dir={tmp_path / 'none'}", "--export_onnx=x.onnx", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    line = last_line(result)
    assert line.startswith(f"error: --checkpoint_dir: no checkpoint {tmp_path / 'none' / 'vdsr.h5'}")
    for words in ("pip install", "--is_train=True", "https://cv.snu.ac.kr/research/VDSR/", "VDSR_Official.mat"):
        assert words in line
    assert "--import_matconvnet=VDSR_Official.mat" in line


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--scales=1"], "--scales: every scale must be an integer of at least 2"),
        (["--scales=2,3,2"], "--scales: 2 given twice"),
        (["--test_datasets=Set5,Set5"], "--test_datasets: Set5 given twice"),
        (["--test_datasets=Set5,"], "--test_datasets: name folders under "),
        (["--test_datasets=.."], "--test_datasets: name folders under "),
        (["--results_json="], "--results_json: give a value; it is empty"),
        (["--test_datasets="], "--test_datasets: give a value; it is empty"),
        (["--input=/nonexistent/photo.png"], "--input: nothing at /nonexistent/photo.png"),
        (["--input=x.png", "--scale=1"], "--scale must lie in (1, 8]"),
        (
            ["--checkpoint_dir=/nonexistent", "--input=data/datasets/test/Set5/bird.png"],
            "--checkpoint_dir: no checkpoint /nonexistent/vdsr.h5",
        ),
        (["--average_weights=/nonexistent/*.h5"], "--average_weights: no file matches"),
        (
            ["--average_weights=checkpoints/vdsr.h5", "--checkpoint_dir=README.md"],
            "--checkpoint_dir: README.md is a file, not a folder",
        ),
        (
            ["--average_weights=checkpoints/vdsr.h5", "--checkpoint_dir=README.md/run"],
            f"--checkpoint_dir: cannot make README.md/run: {os.path.join(ROOT, 'README.md')} is a file, not a folder",
        ),
        (
            ["--input=data/datasets/test/Set5/bird.png", "--output=README.md/out"],
            "--output: cannot make README.md/out: ",
        ),
        (["--export_saved_model=README.md/model"], "--export_saved_model: cannot make README.md/model: "),
        (["--export_saved_model=vdsr.onnx"], "a .onnx file; give a folder's name, or --export_onnx for ONNX"),
        (["--export_onnx=README.md/vdsr.onnx"], f"--export_onnx: {os.path.join(ROOT, 'README.md')} is a file"),
        (["--input=x.png", "--scales=3"], "--scales is for evaluation; to enlarge by 3, give --scale=3"),
        (["--is_train=True", "--scales=2"], "--scales: training validates at x2, x3 and x4, the columns of its record"),
        (["--is_train=True", "--scale=2"], "--scale: training validates at x2, x3 and x4"),
        (["--scale=2.5"], "--scale is for --input and --serve; evaluation takes --scales"),
        (["--scale=3"], "--scale is for --input and --serve; evaluation takes --scales (say --scales=3)"),
        (
            ["--input=data/datasets/test/Set5/bird.png", "--output=big.jpg"],
            "--output is the folder the enlarged files go into, named after their inputs (photo_x2.jpg); give a "
            "folder, say --output=big",
        ),
        (["--is_train=True", "--lr=-1"], "--lr must be a positive number, got -1.0"),
        (["--is_train=True", "--train_h5=/nonexistent/train.h5"], "--train_h5: no file /nonexistent/train.h5"),
        (["--scale=abc"], "error: flag --scale=abc: could not convert string to float: 'abc' (vdsr --help lists"),
        (["--format=gif"], "error: flag --format=gif: value should be one of "),
        (["--scael=3"], "error: Unknown command line flag 'scael'. Did you mean: scale, scales ?"),
        (["--flagfile=/nonexistent.flags"], "error: Unable to open flagfile: [Errno 2] No such file or directory"),
    ],
)
def test_a_flag_error_is_said_before_tensorflow_loads(flags, message):
    # The vdsr command in-process, then whether TensorFlow was imported: its start-up would cost seconds.
    code = (
        "import sys\nfrom vdsr_tf.cli import run\ntry:\n    run()\n"
        "except SystemExit as stop:\n    print(stop.code, file=sys.stderr)\n    print('tensorflow' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *flags], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert message in last_line(result)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    "content, message",
    [
        (b"--scales=2\n--input=caf\xe9.jpg\n", "error: --flagfile: {} (or a file it reads) is not UTF-8 text"),
        (b"\xef\xbb\xbf--scales=2\n", "error: a --flagfile starts with a byte-order mark"),
    ],
)
def test_a_flagfile_that_is_not_plain_utf8_is_named(tmp_path, content, message):
    (tmp_path / "run.flags").write_bytes(content)
    result = run_main(f"--flagfile={tmp_path / 'run.flags'}", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert last_line(result).startswith(message.format(tmp_path / "run.flags"))


def test_console_script_and_main_py_run_the_same_function():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as file:
        project = tomllib.load(file)
    assert project["project"]["scripts"] == {"vdsr": "vdsr_tf.cli:run"}
    with open(os.path.join(ROOT, "main.py")) as file:
        assert "from vdsr_tf.cli import run\n" in file.read()


def test_wheel_carries_the_command_the_weights_and_the_requirements(tmp_path):
    source = tmp_path / "source"
    for name in ("pyproject.toml", "requirements.txt", "README.md", "LICENSE"):
        os.makedirs(source, exist_ok=True)
        shutil.copy(os.path.join(ROOT, name), source / name)
    shutil.copytree(os.path.join(ROOT, "vdsr_tf"), source / "vdsr_tf", ignore=shutil.ignore_patterns("__pycache__"))
    (source / "checkpoints").mkdir()
    shutil.copy(os.path.join(ROOT, "checkpoints", "vdsr.h5"), source / "checkpoints" / "vdsr.h5")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").iterdir()
    assert wheel.name.startswith(f"vdsr_tf-{vdsr_tf.__version__}-py3-none-any")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        with open(os.path.join(ROOT, "checkpoints", "vdsr.h5"), "rb") as file:
            assert archive.read("vdsr_tf/weights/vdsr.h5") == file.read()
        info = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "vdsr_tf/cli.py" in names and "vdsr_tf/onnx_export.py" in names
    assert "vdsr = vdsr_tf.cli:run" in entry_points
    assert "Requires-Dist: tensorflow-cpu==2.21.0" in metadata and "Requires-Dist: onnx==1.23.2" in metadata
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Dist: flask" not in metadata.split("Provides-Extra")[0]  # the web page is an extra


def test_the_package_pins_what_requirements_txt_pins():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as file:
        project = tomllib.load(file)["project"]
    with open(os.path.join(ROOT, "requirements.txt")) as file:
        tested = {line.split("==")[0]: line.strip() for line in file if "==" in line and not line.startswith("#")}
    pinned = project["dependencies"] + [pin for pins in project["optional-dependencies"].values() for pin in pins]
    assert pinned and all(tested.get(pin.split("==")[0]) == pin for pin in pinned)
    assert set(tested) == {pin.split("==")[0] for pin in pinned}


def test_release_files_agree_on_the_version_and_cite_the_paper():
    def read(name):
        with open(os.path.join(ROOT, name)) as file:
            return file.read()

    citation = read("CITATION.cff")
    assert f"\nversion: {vdsr_tf.__version__}\n" in citation
    assert read("CHANGELOG.md").split("\n## ")[1].startswith(f"{vdsr_tf.__version__} ")
    for name in ("family-names: Kim\n      given-names: Jiwon", "given-names: Jung Kwon", "given-names: Kyoung Mu"):
        assert name in citation
    assert "start: 1646\n  end: 1654" in citation and "year: 2016" in citation
    licence = read("LICENSE")
    assert "Apache License\n                           Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence and len(licence.splitlines()) == 202


def test_overwrite_replaces_a_saved_model_never_a_folder_of_other_files(checkpoint_dir, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for folder, names in ((mine, "notes.txt"), (checkpoint_dir, "vdsr.h5")):
        before = sorted(os.listdir(folder))
        result = run_main(f"--checkpoint_dir={checkpoint_dir}", f"--export_saved_model={folder}", "--overwrite")
        assert result.returncode == 1 and result.stderr.strip().splitlines()[-1] == (
            f"error: --export_saved_model: {folder} holds files that are not a SavedModel's ({names}); "
            "give a new or empty folder"
        )
        assert sorted(os.listdir(folder)) == before
    saved = tmp_path / "saved"
    assert run_main(f"--checkpoint_dir={checkpoint_dir}", f"--export_saved_model={saved}").returncode == 0
    again = run_main(f"--checkpoint_dir={checkpoint_dir}", f"--export_saved_model={saved}")
    assert again.returncode == 1 and again.stderr.strip().splitlines()[-1] == (
        f"error: --export_saved_model: {saved} holds a SavedModel (use --overwrite to replace it)"
    )
    replaced = run_main(f"--checkpoint_dir={checkpoint_dir}", f"--export_saved_model={saved}", "--overwrite")
    assert replaced.returncode == 0


def test_a_saved_model_path_that_is_a_file_is_one_line_error(checkpoint_dir, tmp_path):
    existing = tmp_path / "model.txt"
    existing.write_text("mine")
    result = run_main(f"--checkpoint_dir={checkpoint_dir}", f"--export_saved_model={existing}")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == f"error: --export_saved_model: {existing} is a file, not a folder"
    assert "Traceback" not in result.stderr and existing.read_text() == "mine"


def test_an_operating_system_error_is_one_line_naming_the_path(checkpoint_dir, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    weights = checkpoint_dir / "vdsr.h5"
    result = run_main(f"--average_weights={weights},{weights}", f"--checkpoint_dir={blocker / 'averaged'}")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(blocker) in last


def test_a_tensorflow_error_is_one_line_not_a_traceback():
    script = (
        "import sys, tensorflow as tf\n"
        "from vdsr_tf import cli\n"
        "def run_out_of_memory():\n"
        "    raise tf.errors.ResourceExhaustedError(None, None, 'OOM when allocating tensor\\n[[node conv]]')\n"
        "cli.run_evaluation = run_out_of_memory\n"
        "sys.argv = ['vdsr']\n"
        "cli.run()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "error: TensorFlow: OOM when allocating tensor"


def test_a_results_file_that_cannot_be_written_is_one_line_naming_the_flag(checkpoint_dir, tmp_path):
    # The folder passes the check before the work; the write itself fails (a full disk, a read-only mount).
    code = (
        "import vdsr_tf.atomic\ndef refuse(path, value):\n    raise PermissionError(13, 'Permission denied')\n"
        "vdsr_tf.atomic.write_json = refuse\nfrom vdsr_tf.cli import run\nrun()\n"
    )
    flags = [f"--checkpoint_dir={checkpoint_dir}", "--test_datasets=Set5", "--scales=2"]
    result = subprocess.run(
        [sys.executable, "-c", code, *flags, f"--results_json={tmp_path / 'r.json'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr and "| Set5 | x2 |" in result.stdout
    assert last_line(result) == f"error: --results_json: cannot write {tmp_path / 'r.json'} (Permission denied)"


def test_average_reads_a_name_with_glob_characters_and_names_an_unwritable_folder(checkpoint_dir, tmp_path):
    odd = tmp_path / "b[1].h5"
    shutil.copy(checkpoint_dir / "vdsr.h5", odd)
    written = run_main(f"--average_weights={odd}", f"--checkpoint_dir={tmp_path / 'mean'}")
    assert written.returncode == 0 and (tmp_path / "mean" / "vdsr.h5").is_file(), written.stderr[-2000:]
    blocked = run_main(f"--average_weights={odd}", f"--checkpoint_dir={tmp_path / 'b[1].h5' / 'sub'}")
    assert blocked.returncode == 1 and "Traceback" not in blocked.stderr
    assert last_line(blocked) == (
        f"error: --checkpoint_dir: cannot make {tmp_path / 'b[1].h5' / 'sub'}: {odd} is a file, not a folder"
    )
