"""The --serve page in a real browser: headless Chromium picks a photo, the page enlarges it, a screenshot is kept.

    python benchmarks/browser_check.py                      # Set5 butterfly.png at x2, the shipped weights
    python benchmarks/browser_check.py --screenshot=docs/images/web_page.png --results_json=browser.json

Needs Chromium from the system's packages (Debian: apt-get install chromium) and Flask. It starts
`main.py --serve --port=0`, measures the page's time to first byte, drives Chromium over the DevTools
protocol on a pipe (--remote-debugging-pipe: no WebSocket library, no driver binary), picks the photo in
the page's file input as a user would, waits for the before/after view, zooms into a spot with a click,
and saves a screenshot. The download is then compared byte for byte with `main.py --input`'s file, and
the enlargement time through the page with the command line's on the same photo. Exit status 1 if any
check fails.
"""

import argparse
import base64
import http.client
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from vdsr_tf.atomic import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "data", "datasets", "test", "Set5", "butterfly.png")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--remote-debugging-pipe",
)


class DevTools:
    """Chrome's DevTools protocol over --remote-debugging-pipe: JSON messages ending in a NUL byte,
    commands written to the browser's fd 3, answers and events read from its fd 4."""

    def __init__(self, chromium: str, user_data_dir: str, window: tuple[int, int]):
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()

        def browser_fds():
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        arguments = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={user_data_dir}",
            f"--window-size={window[0]},{window[1]}",
        ]
        self.process = subprocess.Popen(
            [*arguments, "about:blank"],
            preexec_fn=browser_fds,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer, self._next_id, self.events = b"", 0, []

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._answers], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._answers, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, *, session: str | None = None, timeout: float = 60):
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_event(self, method: str, *, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(index)
            self.events.append(self._read_message(deadline))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._commands)
        os.close(self._answers)


def start_server(checkpoint_dir: str | None) -> tuple[subprocess.Popen, str]:
    """`main.py --serve --port=0` and its URL, read from the line the server logs."""
    command = [sys.executable, os.path.join(ROOT, "main.py"), "--serve", "--port=0", "--noopen_browser"]
    if checkpoint_dir:
        command.append(f"--checkpoint_dir={checkpoint_dir}")
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)
    lines: list[str] = []
    found = threading.Event()

    def read_log():
        for line in server.stderr:
            lines.append(line)
            sys.stderr.write("server: " + line)
            if "the page is at" in line:
                found.set()

    threading.Thread(target=read_log, daemon=True).start()
    if not found.wait(timeout=300):
        server.kill()
        raise RuntimeError("the server did not start:\n" + "".join(lines))
    url = re.search(r"http://\S+/", next(line for line in lines if "the page is at" in line)).group(0)
    return server, url


def time_to_first_byte(url: str, repeats: int) -> list[float]:
    """Seconds from sending GET / to reading the status line, on a fresh connection each time."""
    host, port = re.match(r"http://([^/:]+):(\d+)/", url).groups()
    times = []
    for _ in range(repeats):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.connect()
        start = time.perf_counter()
        connection.request("GET", "/")
        response = connection.getresponse()
        times.append(time.perf_counter() - start)
        response.read()
        connection.close()
    return times


def evaluate(tools: DevTools, session: str, expression: str):
    answer = tools.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
    if "exceptionDetails" in answer:
        raise RuntimeError(f"page script failed: {answer['exceptionDetails']}")
    return answer["result"].get("value")


def open_page(tools: DevTools, url: str, window: tuple[int, int]) -> str:
    target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "DOM"):
        tools.send(f"{domain}.enable", session=session)
    metrics = {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": False}
    tools.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
    tools.send("Page.navigate", {"url": url}, session=session)
    tools.wait_event("Page.loadEventFired")
    return session


def pick_file(tools: DevTools, session: str, path: str) -> None:
    """What a user's file dialog does: sets the page's file input, which fires its change event."""
    root = tools.send("DOM.getDocument", session=session)["root"]["nodeId"]
    node = tools.send("DOM.querySelector", {"nodeId": root, "selector": "#files"}, session=session)["nodeId"]
    tools.send("DOM.setFileInputFiles", {"nodeId": node, "files": [os.path.abspath(path)]}, session=session)


def wait_until_done(tools: DevTools, session: str, timeout: float) -> tuple[str, list[str]]:
    """The card's final state and the distinct progress lines the page showed on the way."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state, text = evaluate(
            tools,
            session,
            "(c => c ? [c.dataset.state, c.querySelector('.status-text').textContent] : [null, ''])"
            "(document.querySelector('.card'))",
        )
        if text and (not seen or seen[-1] != text):
            seen.append(text)
        if state in ("done", "failed"):
            return state, seen
        time.sleep(0.1)
    return "timed out", seen


def click(tools: DevTools, session: str, selector: str, fx: float, fy: float) -> None:
    """A real mouse click at (fx, fy) of the element's box, as fractions of its width and height."""
    box = evaluate(tools, session, f"(r => [r.left, r.top, r.width, r.height])(document.querySelector('{selector}')"
                                   ".getBoundingClientRect())")  # fmt: skip
    x, y = box[0] + fx * box[2], box[1] + fy * box[3]
    for kind in ("mousePressed", "mouseReleased"):
        event = {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
        tools.send("Input.dispatchMouseEvent", event, session=session)


def screenshot(tools: DevTools, session: str, path: str, width: int) -> None:
    height = evaluate(tools, session, "Math.ceil(document.documentElement.scrollHeight)")
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    tools.send("Emulation.setDeviceMetricsOverride", metrics, session=session)
    time.sleep(0.3)
    data = tools.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as file:
        file.write(base64.b64decode(data))


def download(url: str, path: str) -> bytes:
    host, port = re.match(r"http://([^/:]+):(\d+)/", url).groups()
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:200]!r}")
    return body


def command_line(photo: str, scale: float, out_dir: str, checkpoint_dir: str | None) -> float:
    """Seconds `main.py --input` takes for the photo, start-up (TensorFlow, weights) included."""
    command = [sys.executable, os.path.join(ROOT, "main.py"), f"--input={photo}", f"--scale={scale:g}"]
    command += [f"--output={out_dir}"] + ([f"--checkpoint_dir={checkpoint_dir}"] if checkpoint_dir else [])
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return time.perf_counter() - start


def enlarge_in_process(photo: str, scale: float, out_dir: str, checkpoint_dir: str | None) -> float:
    """Seconds of `enlarge_files` alone, the command line's code once TensorFlow and the weights are loaded."""
    from vdsr_tf.infer import enlarge_files
    from vdsr_tf.model import conv_layers, load_vdsr, make_predictor
    from vdsr_tf.paths import default_checkpoint_dir
    from vdsr_tf.precision import gpu_bf16, native_bf16, resolve_precision

    precision, _ = resolve_precision("auto", reason=native_bf16(gpu=gpu_bf16()))
    model, _ = load_vdsr(os.path.join(checkpoint_dir or default_checkpoint_dir(), "vdsr.h5"), precision=precision)
    predict, margin = make_predictor(model), len(conv_layers(model))
    predict(__import__("numpy").zeros((64, 64), "float32"))  # the trace, which the server also did before
    start = time.perf_counter()
    enlarge_files([photo], out_dir=out_dir, scale=scale, predict=predict, tile=512, margin=margin, overwrite=True)
    return time.perf_counter() - start


# What the page's first card says once done: its texts, the download link and the timings it recorded.
CARD_FACTS = """(card => ({
  status: card.querySelector('.status-text').textContent,
  facts: card.querySelector('.facts').textContent,
  download: card.querySelector('.download').getAttribute('href'),
  name: card.querySelector('.download').download,
  ms: Number(card.dataset.roundTripMs),
  seconds: Number(card.dataset.seconds),
  enlarge_seconds: Number(card.dataset.enlargeSeconds),
}))(document.querySelector('.card'))"""


def browse(arguments, url: str, work: str) -> dict:
    window = (1280, 900)
    tools = DevTools(arguments.chromium, os.path.join(work, "profile"), window)
    try:
        session = open_page(tools, f"{url}?scale={arguments.scale:g}", window)
        pick_file(tools, session, arguments.photo)
        state, progress = wait_until_done(tools, session, arguments.timeout)
        card = evaluate(tools, session, CARD_FACTS)
        if state == "done":
            click(tools, session, ".card .compare", 0.35, 0.55)  # a spot on the wing: the zoom shows it at 2:1
            screenshot(tools, session, arguments.screenshot, window[0])
        errors = [event for event in tools.events if event.get("method") == "Runtime.exceptionThrown"]
        return {"state": state, "progress_seen": progress, "card": card, "page_errors": errors}
    finally:
        tools.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", default=SAMPLE)
    parser.add_argument("--scale", type=float, default=2.0)
    parser.add_argument("--checkpoint_dir", default=None, help="default: the shipped weights")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    parser.add_argument("--screenshot", default=os.path.join(ROOT, "docs", "images", "web_page.png"))
    parser.add_argument("--results_json", default=None)
    parser.add_argument("--timeout", type=float, default=600, help="seconds the enlargement may take")
    arguments = parser.parse_args()
    if not arguments.chromium:
        sys.exit("error: no chromium on PATH (Debian: apt-get install chromium); give --chromium=PATH")
    work = tempfile.mkdtemp(prefix="vdsr-browser-check-")
    server, url = start_server(arguments.checkpoint_dir)
    try:
        first_byte = time_to_first_byte(url, repeats=20)
        seen = browse(arguments, url, work)
        page_file = download(url, seen["card"]["download"]) if seen["state"] == "done" else b""
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    cli_seconds = command_line(arguments.photo, arguments.scale, os.path.join(work, "cli"), arguments.checkpoint_dir)
    cli_file = open(os.path.join(work, "cli", seen["card"]["name"] or "missing"), "rb").read()
    in_process = enlarge_in_process(
        arguments.photo, arguments.scale, os.path.join(work, "lib"), arguments.checkpoint_dir
    )
    results = {
        "photo": os.path.relpath(arguments.photo, ROOT),
        "scale": arguments.scale,
        "time_to_first_byte_ms": {"first": first_byte[0] * 1e3, "median_of_20": statistics.median(first_byte) * 1e3},
        "page_round_trip_s": seen["card"]["ms"] / 1e3,
        "page_server_s": {
            "enlarge_files": seen["card"]["enlarge_seconds"],
            "with_bicubic_copy": seen["card"]["seconds"],
        },
        "page_facts": seen["card"]["facts"],
        "command_line_process_s": cli_seconds,
        "command_line_enlarge_files_s": in_process,
        "download_equals_command_line": page_file == cli_file,
        "progress_seen": seen["progress_seen"],
        "state": seen["state"],
        "page_errors": seen["page_errors"],
        "screenshot": os.path.relpath(arguments.screenshot, ROOT),
    }
    print(json.dumps(results, indent=1))
    if arguments.results_json:
        write_json(arguments.results_json, results)
    shutil.rmtree(work, ignore_errors=True)
    ok = seen["state"] == "done" and results["download_equals_command_line"] and not seen["page_errors"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
