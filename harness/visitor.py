"""The page's own events, called over HTTP as the browser calls them, for tests and benchmarks.

The live canvas's events are private (not in the API, not callable by gradio_client), so a
visitor is simulated with Gradio's queue protocol itself: POST `queue/join` with the event's
fn_index, then read the session's `queue/data` stream until the event completes.

A visitor answers as the page does (app.answer_panel): after a picture at pen-up, the page's
frontend asks for a new drawing id (the State's change that empties the answer's status);
here `new_drawing()` asks for it. Then Right or Send, each with the page's answer counter.
The drawing itself stays on the server (its State): it is never sent with an answer.
"""

import base64
import itertools
import json
import uuid
from io import BytesIO

import httpx
from PIL import Image

CANVAS_EVENT = ("sketchpad", "change")  # the canvas's elem_id, and the event it fires
ANSWER_STATUS = "correction-status"  # the line that says how an answer went (a Markdown)
RIGHT_EVENT = ("correction-right", "click")  # Right: the reading's own text is the answer
SEND_EVENT = ("correction-send", "click")  # Send: the typed text is the answer


def data_url(picture: Image.Image) -> str:
    """A picture as the canvas sends it: a PNG data URL."""
    buffer = BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class Visitor:
    """One visitor's page: its own session, the canvas event and the explanation it follows,
    and the answers (the fn_index of each is None when the page has no answers)."""

    def __init__(self, url: str, timeout_s: float = 120):
        self.http = httpx.Client(base_url=url + "gradio_api/", timeout=timeout_s)
        self.session = uuid.uuid4().hex
        config = httpx.get(url + "config", timeout=timeout_s).json()
        ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
        kinds = {c["id"]: c["type"] for c in config["components"]}
        dependencies = config["dependencies"]
        self.canvas_fn = _fired_by(dependencies, ids[CANVAS_EVENT[0]], CANVAS_EVENT[1])
        status = ids.get(ANSWER_STATUS)  # None when corrections are off (no panel)
        on_state = [  # the State's changes: the explanation, and a new drawing to answer for
            d for d in dependencies if any(kinds.get(t) == "state" for t, _ in d["targets"])
        ]
        self.explain_fn = next(d["id"] for d in on_state if status not in d["outputs"])
        self.new_drawing_fn = next((d["id"] for d in on_state if status in d["outputs"]), None)
        self.right_fn = _fired_by(dependencies, ids.get(RIGHT_EVENT[0]), RIGHT_EVENT[1])
        self.send_fn = _fired_by(dependencies, ids.get(SEND_EVENT[0]), SEND_EVENT[1])
        self._answers = itertools.count(1)  # the page's answer counter (app.ANSWER_COUNTER_JS)

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

    def new_drawing(self) -> dict:
        """What the page asks once a picture at pen-up has been read: a new drawing to answer
        for, made on the server from its own copy of that picture (its State)."""
        return self.call(self._answer_fn(self.new_drawing_fn), [None])

    def right(self, sequence: int | None = None) -> dict:
        """Right, pressed for the drawing last made: the reading's own text is the answer.
        `sequence` is the page's answer counter: this visitor's next number unless given."""
        return self._press(self.right_fn, "", sequence)

    def answer(self, text: str, sequence: int | None = None) -> dict:
        """`text` typed and sent for the drawing last made; `sequence` as for `right`."""
        return self._press(self.send_fn, text, sequence)

    def _press(self, fn_index: int | None, text: str, sequence: int | None) -> dict:
        """An answer's event: the State (the drawing) is the server's and is sent empty."""
        number = next(self._answers) if sequence is None else sequence
        return self.call(self._answer_fn(fn_index), [None, text, number])

    @staticmethod
    def _answer_fn(fn_index: int | None) -> int:
        if fn_index is None:
            raise RuntimeError("the page has no answers: corrections are off (CORRECTIONS_DB)")
        return fn_index

    def fetch_pictures(self, message: dict) -> int:
        """Download the pictures an answer points to, as the page shows them; their count."""
        urls = [v["url"] for v in message["output"]["data"] if isinstance(v, dict) and v.get("url")]
        for url in urls:
            self.http.get(url).raise_for_status()
        return len(urls)

    def close(self) -> None:
        self.http.close()


def status_of(message: dict) -> str:
    """The answer's status line (what the page shows under Right and Send), from an answer
    event's completion message; the error, when the event failed."""
    if not message["success"]:
        return f"(failed: {message['output'].get('error')})"
    return message["output"]["data"][-1]


def _fired_by(dependencies: list[dict], component: int | None, event: str) -> int | None:
    """The fn_index of the event `event` of `component` (None when it has none)."""
    found = (d["id"] for d in dependencies if [component, event] in d["targets"])
    return next(found, None)
