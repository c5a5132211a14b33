"""The page's own events, called over HTTP as the browser calls them, for tests and benchmarks.

The live canvas's events are private (not in the API, not callable by gradio_client), so a
visitor is simulated with Gradio's queue protocol itself: POST `queue/join` with the event's
fn_index, then read the session's `queue/data` stream until the event completes.
"""

import base64
import json
import uuid
from io import BytesIO

import httpx
from PIL import Image

CANVAS_EVENT = ("sketchpad", "change")  # the canvas's elem_id, and the event it fires


def data_url(picture: Image.Image) -> str:
    """A picture as the canvas sends it: a PNG data URL."""
    buffer = BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Visitor:
    """One visitor's page: its own session, the canvas event and the explanation it follows."""

    def __init__(self, url: str, timeout_s: float = 120):
        self.http = httpx.Client(base_url=url + "gradio_api/", timeout=timeout_s)
        self.session = uuid.uuid4().hex
        config = httpx.get(url + "config", timeout=timeout_s).json()
        ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
        kinds = {c["id"]: c["type"] for c in config["components"]}
        pad = ids[CANVAS_EVENT[0]]
        self.canvas_fn = next(
            d["id"] for d in config["dependencies"] if [pad, CANVAS_EVENT[1]] in d["targets"]
        )
        self.explain_fn = next(  # the State's change: the explanation once a stroke
            d["id"]
            for d in config["dependencies"]
            if any(kinds.get(target) == "state" for target, _ in d["targets"])
        )

    def call(self, fn_index: int, data: list) -> dict:
        """The event's completion message: `success`, and `output` (`data`, or `error`)."""
        joined = self.http.post(
            "queue/join",
            json={
                "data": data,
                "event_data": None,
                "fn_index": fn_index,
                "trigger_id": None,
                "session_hash": self.session,
            },
        )
        joined.raise_for_status()
        event_id = joined.json()["event_id"]
        with self.http.stream("GET", "queue/data", params={"session_hash": self.session}) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                message = json.loads(line[5:])
                if message.get("event_id") == event_id and message["msg"] == "process_completed":
                    return message
        raise RuntimeError(f"the stream ended before event {event_id} completed")

    def send(self, png: object, pen_up: bool) -> dict:
        """The canvas's picture, as sketchpad.js sends it (`png` a PNG data URL, or anything
        else, to see what a malformed one gets)."""
        return self.call(self.canvas_fn, [{"png": png, "pen_up": pen_up}])

    def send_value(self, value: object) -> dict:
        """Any value as the canvas's, to see what a malformed one gets."""
        return self.call(self.canvas_fn, [value])

    def explain(self) -> dict:
        """What the page asks once a picture at pen-up has been read (its State changed)."""
        return self.call(self.explain_fn, [None, 1])  # the State is the server's: sent empty

    def fetch_pictures(self, message: dict) -> int:
        """Download the pictures an answer points to, as the page shows them; their count."""
        urls = [v["url"] for v in message["output"]["data"] if isinstance(v, dict) and v.get("url")]
        for url in urls:
            self.http.get(url).raise_for_status()
        return len(urls)

    def close(self) -> None:
        self.http.close()
