"""The --serve page: a local web server where people who use no command line enlarge their photos.

One page (web_page.html) sends each photo to POST /api/enlarge, which enlarges it with the
command line's own code (`vdsr_tf.infer.enlarge_files`, so the download equals `vdsr --input`'s
file byte for byte) and a bicubic copy for the before/after view (`vdsr_tf.infer.enlarge` with
the network replaced by the identity: exactly the bicubic image VDSR starts from). One model is
loaded once; requests take turns, first come first served, so a second photo waits instead of
running beside the first on the same cores. The page polls GET /api/progress/<job> for its place
in the queue, the tiles done and the time left.

Uploads live in a temporary folder removed before the response is sent; results stay in the
server's own temporary folder (at most `keep_results` of them, `keep_bytes` together) until it stops.
"""

import atexit
import contextlib
import dataclasses
import ipaddress
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
import webbrowser
from collections import OrderedDict
from importlib import resources
from typing import NamedTuple

import flask
import numpy as np
from absl import logging
from werkzeug.exceptions import HTTPException
from werkzeug.serving import make_server

from vdsr_tf.images import ImageReadError, probe_picture, read_picture, upright_size, write_picture
from vdsr_tf.infer import (
    MAX_SCALE,
    check_scale,
    enlarge,
    enlarge_files,
    output_format,
    output_path,
    output_shape,
    scale_name,
    tile_count,
)
from vdsr_tf.runtime import stop_signals_interrupt

# Pillow's format name (`probe_picture`'s) -> the name the page shows.
ACCEPTED_FORMATS = {
    "JPEG": "JPEG",
    "PNG": "PNG",
    "WEBP": "WebP",
    "TIFF": "TIFF",
    "BMP": "BMP",
    "GIF": "GIF",
}
FORMAT_NAMES = tuple(dict.fromkeys(ACCEPTED_FORMATS.values()))
_ACCEPT = ".jpg,.jpeg,.png,.webp,.tif,.tiff,.bmp,.gif,image/jpeg,image/png,image/webp,image/tiff,image/bmp,image/gif"
_BROWSER_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")  # output formats a browser shows; TIFF gets a PNG preview
_MIMETYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "BMP": "image/bmp", "TIFF": "image/tiff"}
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_KEPT_JOBS = 256  # progress records kept after their request ended, for the page's last poll
_UNDER_WAY = ("waiting", "enlarging", "comparing")


@dataclasses.dataclass(frozen=True)
class Limits:
    """What the server accepts; the page states the same numbers."""

    upload_bytes: int = 25 * 2**20
    output_pixels: int = 50_000_000
    output_side: int = 32_768  # a 1-pixel-high strip under the pixel limit would still be one huge band
    waiting: int = 8  # photos sent and not yet answered; more are refused (any site's page can send them)

    def for_page(self) -> dict:
        return {
            "upload_mb": self.upload_bytes / 2**20,
            "output_mp": self.output_pixels / 1e6,
            "max_scale": MAX_SCALE,
            "formats": FORMAT_NAMES,
            "accept": _ACCEPT,
        }


class Cancelled(Exception):
    """The page gave up on a job (its photo was removed or the page closed)."""


@dataclasses.dataclass
class Job:
    """One request's progress, as GET /api/progress shows it."""

    id: str
    ticket: int = -1
    state: str = "waiting"  # waiting, enlarging, comparing, done, failed, cancelled
    tiles: int = 0
    tiles_done: int = 0
    started: float | None = None
    enlarged: float | None = None  # when the result was written, before the bicubic copy
    finished: float | None = None
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    early: bool = False  # cancelled before its upload arrived, not yet claimed by that request


@dataclasses.dataclass(frozen=True)
class Result:
    folder: str
    file: str
    download_name: str
    mimetype: str
    preview_mimetype: str
    vdsr: str
    bicubic: str


def _identity(band: np.ndarray) -> np.ndarray:
    return band


class Service:
    """What the page's requests share: the one predictor, its turns, the jobs' progress and the results."""

    def __init__(
        self,
        predict,
        *,
        margin: int,
        tile: int,
        requested_format: str | None,
        quality: int,
        scale: float,
        limits: Limits,
        keep_results: int,
        keep_bytes: int,
    ):
        self.predict, self.margin, self.tile = predict, margin, tile
        self.requested_format, self.quality, self.scale, self.limits = requested_format, quality, scale, limits
        self.keep_results, self.keep_bytes = keep_results, keep_bytes
        self.folder = tempfile.mkdtemp(prefix="vdsr-web-")
        self.uploads = os.path.join(self.folder, "uploads")
        os.makedirs(self.uploads)
        atexit.register(self.close)
        self._lock = threading.Lock()
        self._turns = threading.Condition()
        self._next_ticket = self._serving = 0
        self.pending = 0  # enlarge requests in progress, from upload to answer
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.results: OrderedDict[str, Result] = OrderedDict()
        self.result_bytes: dict[str, int] = {}

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def new_job(self, job_id: str | None) -> Job:
        """The job of a request whose upload has arrived, under the page's id where it gave a valid one.

        A cancel can come before it (the page sends it while the photo is still uploading): that job is
        then returned, already cancelled. An id of a job still in progress is refused with 409.
        """
        job = Job(job_id if job_id and _JOB_ID.fullmatch(job_id) else uuid.uuid4().hex)
        with self._lock:
            earlier = self.jobs.get(job.id)
            if earlier is not None and earlier.early:
                earlier.early = False
                return earlier
            if earlier is not None and earlier.state in _UNDER_WAY:
                flask.abort(409, "this job id is already in use by a photo in progress")
            self._record(job)
        return job

    def cancel(self, job_id: str) -> None:
        """Stops the job between tiles, or before it starts: a cancel may come before the upload ends."""
        with self._lock:
            job = self.jobs.get(job_id)
            if job is None and _JOB_ID.fullmatch(job_id):
                job = Job(job_id, state="cancelled", early=True)
                self._record(job)
            if job is not None:
                job.cancelled.set()

    def _record(self, job: Job) -> None:
        """Adds `job`, dropping the oldest records of jobs no longer under way past `_KEPT_JOBS`."""
        self.jobs[job.id] = job
        ended = [key for key, kept in self.jobs.items() if kept.state not in _UNDER_WAY]
        for key in ended[: max(len(self.jobs) - _KEPT_JOBS, 0)]:
            del self.jobs[key]

    @contextlib.contextmanager
    def admitted(self):
        """Holds a place among `limits.waiting` requests; aborts with 503 when none is free."""
        with self._lock:
            if self.pending >= self.limits.waiting:
                flask.abort(503, f"{self.pending} photos are waiting already; send this one when they are done")
            self.pending += 1
        try:
            yield
        finally:
            with self._lock:
                self.pending -= 1

    @contextlib.contextmanager
    def turn(self, job: Job):
        """Waits until every earlier request has finished (FIFO, unlike a bare Lock), then holds the model."""
        with self._turns:
            job.ticket, self._next_ticket = self._next_ticket, self._next_ticket + 1
            while self._serving != job.ticket:
                self._turns.wait()
        try:
            yield
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()

    def progress(self, job: Job) -> dict:
        elapsed = (job.finished or time.monotonic()) - job.started if job.started else 0.0
        eta = elapsed / job.tiles_done * (job.tiles - job.tiles_done) if job.tiles_done else None
        return {
            "state": job.state,
            "ahead": max(job.ticket - self._serving, 0) if job.state == "waiting" else 0,
            "tiles": job.tiles,
            "tiles_done": job.tiles_done,
            "elapsed_s": round(elapsed, 1),
            "eta_s": None if eta is None else round(eta, 1),
        }

    def counted(self, job: Job):
        """The predictor, counting the tiles `enlarge` runs it on and stopping a cancelled job between tiles."""

        def predict(band: np.ndarray) -> np.ndarray:
            if job.cancelled.is_set():
                raise Cancelled
            out = self.predict(band)
            job.tiles_done += 1
            return out

        return predict

    def keep(self, result_id: str, result: Result) -> None:
        """Keeps `result` for download, removing the oldest ones past `keep_results` or `keep_bytes` (never
        the newest, so that its own download works however large it is)."""
        size = sum(entry.stat().st_size for entry in os.scandir(result.folder) if entry.is_file())
        with self._lock:
            self.results[result_id], self.result_bytes[result_id] = result, size
            while len(self.results) > 1 and (
                len(self.results) > self.keep_results or sum(self.result_bytes.values()) > self.keep_bytes
            ):
                oldest, removed = self.results.popitem(last=False)
                del self.result_bytes[oldest]
                shutil.rmtree(removed.folder, ignore_errors=True)

    def forget(self, result_id: str) -> bool:
        with self._lock:
            result = self.results.pop(result_id, None)
            self.result_bytes.pop(result_id, None)
        if result is not None:
            shutil.rmtree(result.folder, ignore_errors=True)
        return result is not None


def _scale(text: str) -> float:
    try:
        return check_scale(float(text))
    except ValueError:
        flask.abort(400, f"the scale must be more than 1 and at most {MAX_SCALE:g}; got {text or 'nothing'}")


WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"{port}{n}" for port in ("COM", "LPT") for n in range(10))}


def _display_name(filename: str) -> str:
    """The photo's own name for messages and the download (browsers send no folder, but some old ones did)."""
    name = re.sub(r"[\x00-\x1f\x7f]", "", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return name or "photo"


def _saved_upload(upload, folder: str, name: str, limits: Limits) -> str:
    """Saves the upload under the photo's own stem, so that `enlarge_files` logs 'wrote .../<stem>_x2.jpg'.

    A stem that Windows reserves for a device (con.jpg would be written to the console) gets a
    trailing underscore.
    """
    stem, extension = os.path.splitext(name)
    stem = re.sub(r"[^\w-]+", "_", stem).strip("_")
    stem = stem.encode()[:100].decode(errors="ignore") or "photo"  # a file system holds 255 bytes a name
    if stem.upper() in WINDOWS_DEVICES:
        stem += "_"
    extension = extension.lower() if re.fullmatch(r"\.[a-z0-9]{1,5}", extension.lower()) else ""
    path = os.path.join(folder, stem + extension)
    upload.save(path)
    if os.path.getsize(path) > limits.upload_bytes:
        flask.abort(413, f"{name} is larger than the {limits.upload_bytes / 2**20:g} MB a photo may have")
    return path


def _checked_picture(path: str, name: str, scale: float, limits: Limits) -> dict:
    """The upload's format, bit depth and sizes, from its header; aborts with 415 or 422 if it cannot be done."""
    try:
        input_format, deep, alpha = probe_picture(path)
    except ImageReadError as error:
        reason = str(error).removeprefix(f"{path}: ")
        if reason.startswith("not a readable image"):
            flask.abort(415, f"{name} is not an image this page can read ({', '.join(FORMAT_NAMES)} are)")
        flask.abort(415, f"{name}: {reason}")  # HEIC, or too large for Pillow
    if input_format not in ACCEPTED_FORMATS:
        flask.abort(415, f"{name} is a {input_format} image; this page takes {', '.join(FORMAT_NAMES)}")
    width, height = upright_size(path)
    out_height, out_width = output_shape(height, width, scale)
    if max(out_width, out_height) > limits.output_side:
        flask.abort(
            422,
            f"{name} at x{scale_name(scale)} would be {out_width}x{out_height}; at most {limits.output_side} a side",
        )
    if out_width * out_height > limits.output_pixels:
        largest = math.floor(math.sqrt(limits.output_pixels / (width * height)) * 100) / 100
        advice = f"at most x{largest:g} for this photo" if largest > 1 else "this photo is too large to enlarge here"
        flask.abort(
            422,
            f"{name} at x{scale_name(scale)} would be {out_width}x{out_height}, "
            f"{out_width * out_height / 1e6:.1f} megapixels; the limit is {limits.output_pixels / 1e6:g} ({advice})",
        )
    return {"format": input_format, "deep": deep, "alpha": alpha, "width": width, "height": height}


class Previews(NamedTuple):
    vdsr: str  # the result itself, or a PNG of it where browsers cannot show its format
    bicubic: str
    format: str
    width: int
    height: int
    frames: int


def _previews(service: Service, source: str, written: str, file_format: str, scale: float, folder: str) -> Previews:
    """What the before/after view shows. The bicubic copy is written as the result is (format, quality,
    metadata), so that the two differ by the network alone, JPEG compression included."""
    picture = read_picture(source)
    bicubic = enlarge(picture.pixels, scale, _identity, tile=service.tile, margin=service.margin)
    preview_format = file_format if file_format in _BROWSER_FORMATS else "PNG"
    options = {"quality": service.quality, "lossless": picture.lossless, "metadata": picture.metadata}
    bicubic_path = os.path.join(folder, f"bicubic.{preview_format.lower()}")
    write_picture(bicubic, bicubic_path, preview_format, **options)
    vdsr_path = written
    if preview_format != file_format:
        vdsr_path = os.path.join(folder, "vdsr.png")
        write_picture(read_picture(written).pixels, vdsr_path, "PNG", metadata=picture.metadata)
    return Previews(vdsr_path, bicubic_path, preview_format, bicubic.shape[1], bicubic.shape[0], picture.frames)


def _enlarge_in_turn(service: Service, job: Job, path: str, scale: float, file_format: str, folder: str):
    """(the file written, its previews), or (the error, None): `vdsr --input`'s own loop over one file."""
    with service.turn(job):
        if job.cancelled.is_set():
            raise Cancelled
        job.state, job.started = "enlarging", time.monotonic()
        tally = enlarge_files(
            [path],
            out_dir=folder,
            scale=scale,
            predict=service.counted(job),
            tile=service.tile,
            margin=service.margin,
            requested_format=service.requested_format,
            quality=service.quality,
            overwrite=True,
        )
        if tally.failed:
            return tally.failed[0][1], None
        job.state, job.enlarged = "comparing", time.monotonic()
        previews = _previews(service, path, tally.written[0], file_format, scale, folder)
        if job.cancelled.is_set():  # while the previews were made: nobody is waiting for the result
            raise Cancelled
        job.finished = time.monotonic()
        return tally.written[0], previews


def _enlarge_upload(service: Service, job: Job, path: str, name: str, scale: float, facts: dict) -> dict:
    """Enlarges the saved upload as `vdsr --input` would; the JSON the page gets back."""
    file_format, why = output_format(facts["format"], facts["deep"], service.requested_format, alpha=facts["alpha"])
    job.tiles = tile_count(output_shape(facts["height"], facts["width"], scale), service.tile)
    result_id = uuid.uuid4().hex
    folder = os.path.join(service.folder, result_id)
    try:
        written, previews = _enlarge_in_turn(service, job, path, scale, file_format, folder)
        if previews is None:
            flask.abort(422, written.replace(path, name).replace(folder + os.sep, ""))  # no server paths
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    seconds = job.finished - job.started
    download_name = os.path.basename(output_path(name, "", scale, file_format))
    mimetypes = _MIMETYPES[file_format], _MIMETYPES[previews.format]
    service.keep(result_id, Result(folder, written, download_name, *mimetypes, previews.vdsr, previews.bicubic))
    logging.info(
        "%s x%g: %dx%d -> %dx%d in %.1f s",
        name,
        scale,
        facts["width"],
        facts["height"],
        previews.width,
        previews.height,
        seconds,
    )
    notes = [f"written as {file_format}: {why}"] if why else []
    notes += [f"{previews.frames} frames: the first is enlarged"] if previews.frames > 1 else []
    base = f"/api/results/{result_id}"
    return {
        "id": result_id,
        "job": job.id,
        "name": download_name,
        "format": file_format,
        "bytes": os.path.getsize(written),
        "scale": scale,
        "input": {"width": facts["width"], "height": facts["height"], "format": ACCEPTED_FORMATS[facts["format"]]},
        "output": {"width": previews.width, "height": previews.height},
        "seconds": round(seconds, 2),
        "enlarge_seconds": round(job.enlarged - job.started, 2),
        "notes": notes,
        "download": f"{base}/download",
        "vdsr": f"{base}/vdsr",
        "bicubic": f"{base}/bicubic",
    }


def _page_html(limits: Limits, scale: float) -> str:
    template = resources.files("vdsr_tf").joinpath("web_page.html").read_text(encoding="utf-8")
    return flask.render_template_string(template, limits=limits.for_page(), scale=scale_name(scale))


def _enlarge_request(service: Service):
    scale = _scale(flask.request.form.get("scale", ""))
    upload = flask.request.files.get("file")
    if upload is None or not upload.filename:
        flask.abort(400, "choose a photo to enlarge")
    name = _display_name(upload.filename)
    job = service.new_job(flask.request.form.get("job"))
    try:
        if job.cancelled.is_set():
            raise Cancelled
        with tempfile.TemporaryDirectory(dir=service.uploads) as folder:
            path = _saved_upload(upload, folder, name, service.limits)
            facts = _checked_picture(path, name, scale, service.limits)
            answer = _enlarge_upload(service, job, path, name, scale, facts)
    except Cancelled:
        job.state = "cancelled"
        flask.abort(409, f"{name}: cancelled")
    except BaseException:
        job.state = "failed"
        raise
    job.state = "done"
    return flask.jsonify(answer)


def _register_routes(app: flask.Flask, service: Service) -> None:
    @app.get("/")
    def page():
        return _page_html(service.limits, service.scale)

    @app.post("/api/enlarge")
    def enlarge_photo():
        with service.admitted():  # before the body is read
            return _enlarge_request(service)

    @app.get("/api/progress/<job_id>")
    def progress(job_id: str):
        job = service.jobs.get(job_id)
        if job is None:
            flask.abort(404, "no such job")
        return flask.jsonify(service.progress(job))

    @app.post("/api/cancel/<job_id>")
    def cancel(job_id: str):
        service.cancel(job_id)
        return "", 204

    @app.get("/api/results/<result_id>/<kind>")
    def result_file(result_id: str, kind: str):
        result = service.results.get(result_id)
        if result is None or kind not in ("download", "vdsr", "bicubic"):
            flask.abort(404, "this result is no longer kept by the server; enlarge the photo again")
        try:
            if kind == "download":
                return flask.send_file(
                    result.file, result.mimetype, as_attachment=True, download_name=result.download_name
                )
            return flask.send_file(getattr(result, kind), result.preview_mimetype, max_age=3600)
        except FileNotFoundError:  # removed meanwhile, by a DELETE or as the oldest kept
            flask.abort(404, "this result is no longer kept by the server; enlarge the photo again")

    @app.delete("/api/results/<result_id>")
    def forget(result_id: str):
        service.forget(result_id)
        return "", 204


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
EVERY_ADDRESS = ("0.0.0.0", "", "::")  # --host values that listen on all of this machine's addresses


# Suffixes no one can register on the internet, which a home network's names end with.
_PRIVATE_SUFFIXES = ("", ".local", ".lan", ".home.arpa", ".localdomain", ".internal")


def _names_this_server(named: str, host: str) -> bool:
    """Whether a request's Host is this server: on this machine alone, a local name; on the network, an
    address, the --host given, or this machine's name on a private suffix (a site's own name pointed
    here is none of them)."""
    named = named.lower().rstrip(".")
    if host in LOCAL_HOSTS:
        return named in LOCAL_HOSTS
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(named)
        return True
    machine = socket.gethostname().lower().rstrip(".")
    own = {machine, *(machine.split(".")[0] + suffix for suffix in _PRIVATE_SUFFIXES)}
    return bool(named) and named in {*LOCAL_HOSTS, host.lower(), *own}


def _refuse_other_sites(app: flask.Flask, host: str) -> None:
    """Any site's page may send a form here (browsers ask no permission for that), and one whose name
    was pointed at this server (DNS rebinding) may read the answers: a request must name this server,
    and one that changes something must come from its page."""

    @app.before_request
    def from_this_page():
        request = flask.request
        named = request.host[1:].split("]")[0] if request.host.startswith("[") else request.host.split(":")[0]
        if not _names_this_server(named, host):
            flask.abort(403, f"this server answers to its own names and addresses, not {request.host}")
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD") and origin and origin != request.host_url.rstrip("/"):
            flask.abort(403, "requests from another site's page are refused")


def _register_errors(app: flask.Flask, service: Service) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        message = error.description
        if error.code == 413 and "MB a photo may have" not in message:
            message = f"the upload is larger than the {service.limits.upload_bytes / 2**20:g} MB a photo may have"
        return flask.jsonify(error=message), error.code

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        logging.exception("the page's request failed")
        said = str(error).replace(service.folder + os.sep, "").replace(service.folder, "")  # no server paths
        return flask.jsonify(error=f"the server failed ({type(error).__name__}: {said}); see its log"), 500


def create_app(
    predict,
    *,
    margin: int,
    tile: int = 512,
    requested_format: str | None = None,
    quality: int = 95,
    scale: float = 2.0,
    limits: Limits = Limits(),
    keep_results: int = 100,
    keep_bytes: int = 2 * 2**30,
    host: str = "127.0.0.1",
) -> flask.Flask:
    """The page's Flask application around one predictor.

    Args:
      predict: `vdsr_tf.model.make_predictor`'s function (float32 HxW Y in [0, 1] -> HxW).
      margin: context pixels per tile, the network's depth (as `vdsr --input` passes it).
      tile, requested_format, quality: as `enlarge_files` takes them: --tile, --format, --quality.
      scale: the scale the page offers first (--scale).
      limits: the largest upload and output.
      keep_results, keep_bytes: how many results are kept for download, and how many bytes of them
        together (a 50-megapixel PNG is some 100 MB); older ones are removed.
      host: the address it listens on (--host): on this machine alone, requests must name it.

    Returns:
      The app; `app.extensions["vdsr"]` is its `Service`, whose `close()` removes its temporary folder.
    """
    app = flask.Flask(__name__)
    # Form fields and multipart headers come on top of the photo itself, which _saved_upload checks exactly.
    app.config["MAX_CONTENT_LENGTH"] = limits.upload_bytes + 2**16
    service = Service(
        predict,
        margin=margin,
        tile=tile,
        requested_format=requested_format,
        quality=quality,
        scale=check_scale(scale),
        limits=limits,
        keep_results=keep_results,
        keep_bytes=keep_bytes,
    )
    app.extensions["vdsr"] = service
    _refuse_other_sites(app, host)
    _register_routes(app, service)
    _register_errors(app, service)
    return app


def page_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _page_addresses(host: str, port: int) -> str:
    """Where to open the page: listening on every address, 0.0.0.0 opens nowhere, so this machine's own
    and its address on the network (that of the route out, found without sending anything)."""
    if host not in EVERY_ADDRESS:
        return page_url(host, port)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1; a UDP connect sends no packet
            network = probe.getsockname()[0]
    except OSError:
        network = socket.gethostname()
    return f"{page_url('127.0.0.1', port)} here, {page_url(network, port)} from other machines"


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one) and listening, before the model loads, so that a
    wrong address or a taken port is said at once; bound here rather than by Werkzeug, which prints its own
    advice and exits when the port is taken.

    Raises:
      OSError: if the address cannot be bound (the port is in use, say).
    """
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(128)
    except OSError:
        listening.close()
        raise
    return listening


def page_server(app: flask.Flask, listening: socket.socket, host: str):
    """Werkzeug's threaded server for `app` on the `listening_socket`, not yet serving.

    Werkzeug's rather than a production server: the page serves one person on their own machine,
    and the work is serialised by `Service.turn` anyway.
    """
    return make_server(host, listening.getsockname()[1], app, threaded=True, fd=listening.fileno())


def open_page(host: str, port: int, *, environment=os.environ, platform: str = sys.platform) -> bool:
    """Opens the page in the default browser where there is a desktop to show it on; whether it tried.

    Over SSH or in a headless session Python's webbrowser would start a text browser in
    the terminal, so there it is left to the URL in the log.
    """
    if platform not in ("darwin", "win32") and not (environment.get("DISPLAY") or environment.get("WAYLAND_DISPLAY")):
        return False
    local = "127.0.0.1" if host in EVERY_ADDRESS else host
    threading.Thread(target=webbrowser.open, args=(page_url(local, port),), daemon=True).start()
    return True


def serve(app: flask.Flask, listening: socket.socket, *, host: str, open_browser: bool = False) -> None:
    """Serves `app` on the `listening_socket` until Ctrl-C, SIGTERM or SIGHUP (its terminal closed), then
    removes its temporary folder; `open_browser`: `open_page` first."""
    import logging as python_logging

    python_logging.getLogger("werkzeug").setLevel(python_logging.WARNING)  # not a line per progress poll
    server = None
    try:
        with stop_signals_interrupt():
            server = page_server(app, listening, host)
            logging.info("the page is at %s (Ctrl-C stops the server)", _page_addresses(host, server.port))
            if open_browser:
                open_page(host, server.port)
            if host not in LOCAL_HOSTS:
                logging.warning("listening on %s: anyone who can reach this machine can use the page", host)
            server.serve_forever()  # Werkzeug's returns on KeyboardInterrupt
    finally:
        if server is not None:
            server.server_close()
        app.extensions["vdsr"].close()
    logging.info("stopped")
