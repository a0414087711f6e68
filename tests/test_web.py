"""The --serve page through Flask's test client: upload, enlarge, download, limits, turns and progress."""

import importlib.util
import io
import os
import socket
import threading
import time

import numpy as np
import pytest
from helpers import run_main
from PIL import ExifTags, Image

pytest.importorskip("flask", reason="the --serve page needs Flask (pip install '.[web]')")

from vdsr_tf import web  # noqa: E402
from vdsr_tf.web import Limits, create_app  # noqa: E402

TILE = 16  # a 24x32 photo at x2 is 48x64: 3 x 4 = 12 tiles, so progress has steps to count


def photo(shape=(24, 32, 3), seed=0) -> np.ndarray:
    smooth = np.cumsum(np.cumsum(np.random.default_rng(seed).random(shape), axis=0), axis=1)
    return (255 * smooth / smooth.max()).astype(np.uint8)


def camera_jpeg(path) -> None:
    """A JPEG as a camera writes it: EXIF (make, model, orientation 6, i.e. turned 90 degrees), sRGB, 300 dpi."""
    from PIL import ImageCms

    exif = Image.Exif()
    exif[ExifTags.Base.Make], exif[ExifTags.Base.Model] = "Fujifilm", "X-T5"
    exif[ExifTags.Base.Orientation] = 6
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo()).save(path, "JPEG", quality=90, exif=exif.tobytes(), icc_profile=icc, dpi=(300, 300))


def encoded(pixels: np.ndarray, file_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, file_format)
    return buffer.getvalue()


@pytest.fixture
def predict(checkpoint_dir):
    from vdsr_tf.model import load_vdsr, make_predictor

    model, _ = load_vdsr(str(checkpoint_dir / "vdsr.h5"), precision="float32")
    return make_predictor(model)


@pytest.fixture
def make_app(predict):
    apps = []

    def make(**options):
        app = create_app(predict, margin=3, tile=TILE, **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["vdsr"].close()


@pytest.fixture
def client(make_app):
    return make_app().test_client()


def post(client, data: bytes, name: str = "photo.png", scale="2", **fields):
    return client.post("/api/enlarge", data={"scale": scale, "file": (io.BytesIO(data), name), **fields})


def test_page_states_the_limits(client):
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    text = response.get_data(as_text=True)
    assert "JPEG, PNG, WebP, TIFF, BMP, GIF · up to 25 MB a photo" in text
    assert "results up to 50 megapixels" in text and "up to 8" in text
    assert 'type="file" multiple' in text and 'step="any" value="2"' in text


def test_page_offers_the_scale_given(make_app):
    assert 'step="any" value="2.5"' in make_app(scale=2.5).test_client().get("/").get_data(as_text=True)


def test_downloads_equal_the_command_lines_files_byte_for_byte(client, checkpoint_dir, tmp_path):
    """The page and `vdsr --input` write the same bytes: EXIF, ICC and DPI of a camera JPEG included."""
    folder = tmp_path / "photos"
    folder.mkdir()
    camera_jpeg(folder / "camera.jpg")
    (folder / "plain.png").write_bytes(encoded(photo(seed=1)))
    (folder / "scan.tif").write_bytes(encoded(photo(seed=2), "TIFF"))
    out = tmp_path / "cli"
    result = run_main(
        f"--input={folder}", "--scale=2.5", f"--tile={TILE}", "--precision=float32", f"--output={out}",
        f"--checkpoint_dir={checkpoint_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for name, expected_name in (("camera.jpg", "camera_x2.5.jpg"), ("plain.png", "plain_x2.5.png"),
                                ("scan.tif", "scan_x2.5.tif")):  # fmt: skip
        answer = post(client, (folder / name).read_bytes(), name, scale="2.5")
        assert answer.status_code == 200, answer.json
        assert answer.json["name"] == expected_name
        download = client.get(answer.json["download"])
        assert download.status_code == 200
        assert download.headers["Content-Disposition"] == f"attachment; filename={expected_name}"
        assert download.data == (out / expected_name).read_bytes(), name
    with Image.open(io.BytesIO(download.data)) as image:
        assert image.format == "TIFF"


def test_answer_describes_the_result_and_its_previews(client, tmp_path):
    camera_jpeg(tmp_path / "camera.jpg")
    answer = post(client, (tmp_path / "camera.jpg").read_bytes(), "DSC 0001.JPG").json
    # Orientation 6: the 32x24 file is a 24x32 (w x h) upright photo, as the page shows it; x2 -> 48x64.
    assert answer["input"] == {"width": 24, "height": 32, "format": "JPEG"}
    assert answer["output"] == {"width": 48, "height": 64}
    assert (answer["name"], answer["format"], answer["scale"], answer["notes"]) == ("DSC 0001_x2.jpg", "JPEG", 2, [])
    for kind in ("vdsr", "bicubic"):
        preview = client.get(answer[kind])
        assert preview.mimetype == "image/jpeg"
        with Image.open(io.BytesIO(preview.data)) as image:
            assert image.size == (48, 64) and image.getexif()[ExifTags.Base.Model] == "X-T5"


def test_bicubic_preview_is_the_image_vdsr_starts_from(client):
    from vdsr_tf.imresize import imresize

    gray = photo((24, 32))
    answer = post(client, encoded(gray)).json
    with Image.open(io.BytesIO(client.get(answer["bicubic"]).data)) as image:
        bicubic = np.asarray(image)
    # MATLAB's imresize of a uint8 image, rounded back to uint8; the page's copy goes through the same code.
    expected = np.clip(np.floor(imresize(gray / 255.0, scale=2) * 255 + 0.5), 0, 255).astype(np.uint8)
    assert np.abs(bicubic.astype(int) - expected).max() <= 1


def test_gif_becomes_png_and_tiff_gets_a_png_preview(client):
    frames = [Image.fromarray(photo(seed=seed)).convert("P") for seed in (0, 1)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    answer = post(client, buffer.getvalue(), "anim.gif").json
    assert (answer["name"], answer["format"]) == ("anim_x2.png", "PNG")
    assert answer["notes"] == ["written as PNG: GIF is not an output format", "2 frames: the first is enlarged"]
    tiff = post(client, encoded(photo(), "TIFF"), "scan.tiff").json
    assert client.get(tiff["download"]).mimetype == "image/tiff"
    assert client.get(tiff["vdsr"]).mimetype == client.get(tiff["bicubic"]).mimetype == "image/png"


def test_uploads_are_removed_after_the_response(make_app):
    app = make_app()
    service = app.extensions["vdsr"]
    assert post(app.test_client(), encoded(photo())).status_code == 200
    assert post(app.test_client(), b"not an image").status_code == 415
    assert os.listdir(service.uploads) == []


@pytest.mark.parametrize(
    ("data", "name", "status", "message"),
    [
        (b"hello, not a picture", "notes.png", 415, "notes.png is not an image this page can read"),
        (b"", "empty.jpg", 415, "empty.jpg is not an image this page can read"),
        (encoded(photo())[:300], "cut.png", 422, "cut.png: not a readable image (image file is truncated"),
        (encoded(photo(), "PPM"), "photo.ppm", 415, "photo.ppm is a PPM image; this page takes JPEG, PNG, WebP"),
        (b"ftypheic", "IMG_1.HEIC", 415, "IMG_1.HEIC: HEIC is not read here; save it as JPEG or PNG first"),
    ],
)
def test_bad_files_get_a_clear_4xx(client, data, name, status, message):
    answer = post(client, data, name)
    assert answer.status_code == status and answer.json["error"].startswith(message)
    assert "Traceback" not in answer.get_data(as_text=True)


@pytest.mark.parametrize("scale", ["1", "0.5", "8.01", "nan", "inf", "two", ""])
def test_scale_out_of_range(client, scale):
    answer = post(client, encoded(photo()), scale=scale)
    assert answer.status_code == 400
    assert answer.json["error"] == f"the scale must be more than 1 and at most 8; got {scale or 'nothing'}"


def test_scale_of_8_and_a_real_scale_work(client):
    assert post(client, encoded(photo((8, 6, 3))), scale="8").json["output"] == {"width": 48, "height": 64}
    assert post(client, encoded(photo()), scale="1.3").json["output"] == {"width": 42, "height": 32}  # ceil(31.2)


def test_no_file(client):
    answer = client.post("/api/enlarge", data={"scale": "2"})
    assert answer.status_code == 400 and answer.json["error"] == "choose a photo to enlarge"


def test_upload_too_large(make_app):
    client = make_app(limits=Limits(upload_bytes=512)).test_client()
    data = encoded(photo())
    assert len(data) > 512
    answer = post(client, data)
    assert answer.status_code == 413
    assert answer.json["error"] == "photo.png is larger than the 0.000488281 MB a photo may have"
    # Beyond the request limit itself Werkzeug refuses the body before the file is read.
    answer = post(client, data + bytes(2**17))
    assert answer.status_code == 413 and "MB a photo may have" in answer.json["error"]


def test_output_too_large(make_app):
    client = make_app(limits=Limits(output_pixels=48 * 64 - 1)).test_client()
    answer = post(client, encoded(photo()))
    assert answer.status_code == 422
    # sqrt(3071 / 768) = 1.9997: the largest scale in hundredths below it is 1.99.
    assert answer.json["error"] == (
        "photo.png at x2 would be 64x48, 0.0 megapixels; the limit is 0.003071 (at most x1.99 for this photo)"
    )


def test_output_too_large_gives_the_size_of_the_photo_as_shown(make_app, tmp_path):
    camera_jpeg(tmp_path / "camera.jpg")  # stored 32x24, turned upright to 24x32 by its EXIF orientation
    client = make_app(limits=Limits(output_pixels=48 * 64 - 1)).test_client()
    answer = post(client, (tmp_path / "camera.jpg").read_bytes(), "camera.jpg")
    assert answer.status_code == 422 and answer.json["error"].startswith("camera.jpg at x2 would be 48x64,")


def test_a_long_non_ascii_name_is_cut_to_what_a_file_system_holds(client):
    answer = post(client, encoded(photo(seed=3)), "日" * 100 + ".png", scale="2")  # 300 bytes in UTF-8
    assert answer.status_code == 200, answer.json
    assert answer.json["name"] == "日" * 100 + "_x2.png"  # the download keeps the whole name


@pytest.mark.parametrize(
    "name, saved", [("con.PNG", "con_.png"), ("LPT1.jpg", "LPT1_.jpg"), ("console.png", "console.png")]
)
def test_an_upload_named_as_a_windows_device_is_saved_under_another_stem(tmp_path, name, saved):
    class Upload:
        def save(self, path):
            with open(path, "wb") as file:
                file.write(b"photo")

    assert os.path.basename(web._saved_upload(Upload(), str(tmp_path), name, Limits())) == saved


def test_a_transparent_upload_to_a_jpeg_server_is_put_onto_white_and_said(make_app):
    client = make_app(requested_format="jpeg").test_client()  # as `vdsr --serve --format=jpeg`
    answer = post(client, encoded(photo((24, 32, 4))), "logo.png")
    assert answer.status_code == 200, answer.json
    assert (answer.json["name"], answer.json["notes"]) == (
        "logo_x2.jpg",
        ["written as JPEG: transparency put onto white: JPEG holds none"],
    )


def test_a_failed_write_names_the_photo_not_the_servers_folders(make_app):
    client = make_app(requested_format="webp").test_client()
    answer = post(client, encoded(photo((8, 8200, 3))), "wide.png")
    assert answer.status_code == 422
    assert answer.json["error"].startswith("wide_x2.webp: 16400x16 is too large for WEBP")


def test_results_can_be_removed_and_old_ones_go(make_app):
    client = make_app(keep_results=2).test_client()
    answers = [post(client, encoded(photo(seed=seed))).json for seed in range(3)]
    assert client.get(answers[0]["download"]).status_code == 404  # the oldest of three, beyond keep_results=2
    assert client.get(answers[1]["download"]).status_code == 200
    assert client.delete(f"/api/results/{answers[1]['id']}").status_code == 204
    missing = client.get(answers[1]["vdsr"])
    assert missing.status_code == 404 and "enlarge the photo again" in missing.json["error"]


def test_old_results_go_when_the_kept_ones_pass_their_bytes(make_app):
    client = make_app(keep_bytes=1).test_client()  # under any one result: only the newest is kept
    first, second = (post(client, encoded(photo(seed=seed))).json for seed in range(2))
    assert client.get(first["download"]).status_code == 404
    assert client.get(second["download"]).status_code == 200 and client.get(second["vdsr"]).status_code == 200
    service = client.application.extensions["vdsr"]
    assert list(service.result_bytes) == [second["id"]] and service.result_bytes[second["id"]] > 0


class GatedPredictor:
    """The real predictor behind a gate, recording how many calls ever ran at once."""

    def __init__(self, predict):
        self.predict, self.gate = predict, threading.Event()
        self.running = self.most_at_once = 0
        self.lock = threading.Lock()

    def __call__(self, band):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            self.gate.wait(timeout=60)
            return self.predict(band)
        finally:
            with self.lock:
                self.running -= 1


def wait_for(condition, timeout=30.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_second_request_waits_its_turn_and_progress_shows_it(predict):
    gated = GatedPredictor(predict)
    app = create_app(gated, margin=3, tile=TILE)
    answers = {}

    def send(job):
        answers[job] = post(app.test_client(), encoded(photo()), job=job)

    threads = [threading.Thread(target=send, args=(job,)) for job in ("first-job", "second-job", "third-job")]
    threads[0].start()
    client = app.test_client()

    def progress(job):
        answer = client.get(f"/api/progress/{job}")
        return answer.json if answer.status_code == 200 else {}

    wait_for(lambda: progress("first-job").get("state") == "enlarging")
    for ahead, (job, thread) in enumerate(zip(("second-job", "third-job"), threads[1:]), start=1):
        thread.start()
        wait_for(lambda job=job, ahead=ahead: progress(job).get("ahead") == ahead)
    assert progress("second-job")["state"] == progress("third-job")["state"] == "waiting"
    assert client.post("/api/cancel/third-job").status_code == 204
    gated.gate.set()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert answers["first-job"].status_code == answers["second-job"].status_code == 200
        assert answers["third-job"].status_code == 409 and answers["third-job"].json["error"] == "photo.png: cancelled"
        assert gated.most_at_once == 1
        done = progress("second-job")
        assert (done["state"], done["tiles"], done["tiles_done"], done["eta_s"]) == ("done", 12, 12, 0.0)
        assert progress("third-job")["state"] == "cancelled"
    finally:
        app.extensions["vdsr"].close()


def test_a_cancel_sent_while_the_photo_uploads_is_kept_for_it(client):
    assert client.post("/api/cancel/early-job").status_code == 204  # the upload has not arrived yet
    answer = post(client, encoded(photo()), job="early-job")
    assert answer.status_code == 409 and answer.json["error"] == "photo.png: cancelled"
    assert client.get("/api/progress/early-job").json["state"] == "cancelled"
    assert not client.application.extensions["vdsr"].results
    assert post(client, encoded(photo()), job="early-job").status_code == 200  # the early cancel was used up


def test_a_cancel_during_the_previews_keeps_no_result(make_app, monkeypatch):
    app = make_app()
    service = app.extensions["vdsr"]
    real_previews = web._previews

    def previews_then_cancel(*arguments):
        made = real_previews(*arguments)
        service.cancel("preview-job")
        return made

    monkeypatch.setattr(web, "_previews", previews_then_cancel)
    answer = post(app.test_client(), encoded(photo()), job="preview-job")
    assert answer.status_code == 409 and not service.results
    assert os.listdir(service.folder) == ["uploads"]


def test_a_job_id_in_use_is_refused_and_leaves_the_first_photo_alone(predict):
    gated = GatedPredictor(predict)
    app = create_app(gated, margin=3, tile=TILE)
    answers = {}

    def send_first():
        answers["first"] = post(app.test_client(), encoded(photo()), job="same-job")

    thread = threading.Thread(target=send_first)
    thread.start()
    client = app.test_client()
    try:
        wait_for(lambda: (client.get("/api/progress/same-job").json or {}).get("state") == "enlarging")
        second = post(client, encoded(photo(seed=1)), job="same-job")
        assert second.status_code == 409 and "already in use" in second.json["error"]
        gated.gate.set()
        thread.join(timeout=60)
        assert answers["first"].status_code == 200
        assert client.get("/api/progress/same-job").json["state"] == "done"
    finally:
        gated.gate.set()
        app.extensions["vdsr"].close()


def test_requests_past_the_waiting_limit_are_refused_before_their_upload(predict):
    gated = GatedPredictor(predict)
    app = create_app(gated, margin=3, tile=TILE, limits=Limits(waiting=1))
    thread = threading.Thread(target=post, args=(app.test_client(), encoded(photo())), kwargs={"job": "held-job"})
    thread.start()
    client = app.test_client()
    try:
        wait_for(lambda: (client.get("/api/progress/held-job").json or {}).get("state") == "enlarging")
        refused = post(client, encoded(photo(seed=1)))
        assert refused.status_code == 503 and "1 photos are waiting already" in refused.json["error"]
        gated.gate.set()
        thread.join(timeout=60)
        assert post(client, encoded(photo(seed=1))).status_code == 200  # the place is free again
    finally:
        gated.gate.set()
        app.extensions["vdsr"].close()


def test_another_sites_page_and_another_host_name_are_refused(client):
    elsewhere = client.post(
        "/api/enlarge",
        data={"file": (io.BytesIO(encoded(photo())), "a.png")},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403 and "another site" in elsewhere.json["error"]
    rebound = client.get("/", headers={"Host": "evil.example:8080"})
    assert rebound.status_code == 403 and "not evil.example:8080" in rebound.json["error"]
    own = client.post(
        "/api/enlarge",
        data={"scale": "2", "file": (io.BytesIO(encoded(photo())), "a.png")},
        headers={"Origin": "http://localhost"},  # the test client's own address
    )
    assert own.status_code == 200, own.json
    assert client.get("/", headers={"Host": "[::1]:8080"}).status_code == 200


@pytest.mark.parametrize(
    "named, answered",
    [("192.168.1.5:8080", True), ("[fe80::1]:8080", True), ("localhost:8080", True), ("photos.lan", True)]
    + [(f"{socket.gethostname()}.local:8080", True), ("rebind.attacker.example:8080", False)]
    + [(f"{socket.gethostname()}.rebind.attacker.example:8080", False)],
)
def test_on_the_network_a_sites_own_name_pointed_here_is_refused(make_app, named, answered):
    """DNS rebinding: another site's name, pointed at this machine, with the Origin of that name."""
    client = make_app(host="photos.lan").test_client()
    origin = {"Origin": f"http://{named}"}
    answer = client.post(
        "/api/enlarge",
        data={"scale": "2", "file": (io.BytesIO(encoded(photo())), "a.png")},
        headers={"Host": named, **origin},
    )
    assert (answer.status_code == 200) == answered, answer.json
    if not answered:
        assert answer.json["error"] == f"this server answers to its own names and addresses, not {named}"


def test_a_result_removed_while_asked_for_is_a_404_and_a_failure_names_no_server_path(make_app, monkeypatch):
    app = make_app()
    client = app.test_client()
    answer = post(client, encoded(photo())).json
    service = app.extensions["vdsr"]
    os.remove(service.results[answer["id"]].file)  # as a DELETE or an eviction at that moment
    assert client.get(answer["download"]).status_code == 404

    def full_disk(*args, **kwargs):
        raise RuntimeError(f"{service.folder}/abc/bicubic.png: no space left")

    monkeypatch.setattr(web, "_previews", full_disk)
    failed = post(client, encoded(photo(seed=2)))
    assert failed.status_code == 500 and service.folder not in failed.json["error"]
    assert "abc/bicubic.png: no space left" in failed.json["error"]


def test_a_strip_under_the_pixel_limit_but_over_the_side_limit_is_refused(make_app):
    client = make_app(limits=Limits(output_side=60)).test_client()
    answer = post(client, encoded(photo((8, 32))), "strip.png", scale="2")
    assert answer.status_code == 422 and answer.json["error"] == "strip.png at x2 would be 64x16; at most 60 a side"


def test_progress_counts_tiles_with_an_eta(predict):
    gated = GatedPredictor(predict)
    app = create_app(gated, margin=3, tile=TILE)
    thread = threading.Thread(target=post, args=(app.test_client(), encoded(photo())), kwargs={"job": "counted-job"})
    thread.start()
    client = app.test_client()
    try:
        wait_for(lambda: (client.get("/api/progress/counted-job").json or {}).get("state") == "enlarging")
        started = client.get("/api/progress/counted-job").json
        assert (started["tiles"], started["tiles_done"], started["eta_s"]) == (12, 0, None)
        gated.gate.set()
        thread.join(timeout=60)
        assert client.get("/api/progress/counted-job").json["tiles_done"] == 12
    finally:
        gated.gate.set()
        app.extensions["vdsr"].close()


def test_unknown_job_and_result(client):
    assert client.get("/api/progress/nosuchjob").status_code == 404
    assert client.get("/api/results/nosuch/download").status_code == 404
    assert client.get("/api/results/nosuch/other").json["error"].startswith("this result is no longer kept")


def test_serve_without_flask_says_how_to_install_it(monkeypatch):
    from vdsr_tf import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "flask" else real(name))
    with pytest.raises(cli.UsageError) as error:
        cli.run_serve()
    assert str(error.value) == ("--serve needs Flask: pip install 'vdsr-tf[web]' (from a clone: pip install '.[web]')")


def test_serve_is_a_mode_of_its_own():
    result = run_main("--serve", "--input=photo.png")
    assert result.returncode == 1 and result.stderr.strip() == "error: --input and --serve: give one mode at a time"


def test_real_server_answers_on_a_free_port_and_refuses_a_taken_one(make_app):
    import urllib.request

    from vdsr_tf.web import listening_socket, page_server

    app = make_app()
    with listening_socket("127.0.0.1", 0) as listening:
        server = page_server(app, listening, "127.0.0.1")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=30) as response:
            assert response.status == 200 and b"Drop photos here" in response.read()
        with pytest.raises(OSError):
            listening_socket("127.0.0.1", server.port)
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_cannot_listen_names_the_flag_at_fault():
    import errno
    import socket

    from vdsr_tf.cli import listen_error

    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert listen_error(unknown, "nosuchhost", 8080).startswith("--host: cannot listen on nosuchhost (")
    foreign = OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address")
    assert listen_error(foreign, "192.0.2.1", 8080).startswith("--host: cannot listen on 192.0.2.1 (")
    taken = OSError(errno.EADDRINUSE, "Address already in use")
    assert listen_error(taken, "127.0.0.1", 8080) == (
        "--port: cannot listen on 127.0.0.1:8080 (Address already in use); choose another port"
    )


def test_serve_checks_the_scale_before_loading_the_model(tmp_path):
    result = run_main("--serve", "--scale=9", f"--checkpoint_dir={tmp_path / 'none'}")
    assert (
        result.returncode == 1
        and result.stderr.strip().splitlines()[-1] == "error: --scale must lie in (1, 8], got 9.0"
    )


def test_serve_says_a_wrong_host_or_a_taken_port_before_loading_the_model(tmp_path):
    import socket

    try:
        socket.create_server(("192.0.2.1", 0)).close()
        pytest.skip("this machine can bind 192.0.2.1 (net.ipv4.ip_nonlocal_bind)")
    except OSError:
        pass
    missing = f"--checkpoint_dir={tmp_path / 'none'}"
    foreign = run_main("--serve", "--host=192.0.2.1", "--noopen_browser", missing)  # TEST-NET-1: no machine's own
    assert foreign.returncode == 1
    assert foreign.stderr.strip().splitlines()[-1].startswith("error: --host: cannot listen on 192.0.2.1 (")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = run_main("--serve", f"--port={port}", "--noopen_browser", missing)
    assert busy.returncode == 1
    assert busy.stderr.strip().splitlines()[-1].startswith(f"error: --port: cannot listen on 127.0.0.1:{port} (")


def test_the_page_opens_in_a_browser_only_where_there_is_a_desktop(monkeypatch):
    import webbrowser

    from vdsr_tf.web import open_page

    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    assert not open_page("127.0.0.1", 8080, environment={}, platform="linux")  # SSH, a server, CI
    assert open_page("0.0.0.0", 8080, environment={"DISPLAY": ":0"}, platform="linux")
    assert open_page("127.0.0.1", 9000, environment={}, platform="darwin")
    deadline = time.monotonic() + 10
    while len(opened) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(opened) == ["http://127.0.0.1:8080/", "http://127.0.0.1:9000/"]


def test_a_closed_terminal_or_kill_stops_the_server_and_removes_its_folder(checkpoint_dir, tmp_path):
    import signal
    import subprocess
    import sys

    from helpers import ROOT

    temporary = tmp_path / "tmp"
    temporary.mkdir()
    log_path = tmp_path / "log.txt"
    for signum in (signal.SIGHUP, signal.SIGTERM):
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "main.py",
                    "--serve",
                    "--port=0",
                    "--noopen_browser",
                    f"--checkpoint_dir={checkpoint_dir}",
                ],
                cwd=ROOT,
                stdout=log,
                stderr=log,
                env={**os.environ, "TMPDIR": str(temporary), "TF_CPP_MIN_LOG_LEVEL": "3"},
                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL),  # as a terminal's session finds it
            )
        deadline = time.time() + 120
        while "the page is at" not in log_path.read_text() and time.time() < deadline:
            time.sleep(0.2)
        assert list(temporary.glob("vdsr-web-*")), log_path.read_text()[-2000:]
        process.send_signal(signum)
        assert process.wait(timeout=60) == 0, log_path.read_text()[-2000:]
        assert "stopped" in log_path.read_text() and "Traceback" not in log_path.read_text()
        assert not list(temporary.glob("vdsr-web-*"))


def test_listening_on_every_address_the_log_gives_addresses_that_open():
    assert web._page_addresses("127.0.0.1", 8080) == "http://127.0.0.1:8080/"
    said = web._page_addresses("0.0.0.0", 8080)
    assert said.startswith("http://127.0.0.1:8080/ here, http://") and said.endswith(":8080/ from other machines")
    assert "0.0.0.0" not in said
