// The drawing surface: a plain <canvas> in app.py's gr.HTML (elem_id "sketchpad").
// Gradio runs this file as the component's js_on_load, with `element` (the component's
// root), `props` (app.py's props: width, height, brush_width, send_every_ms) and `trigger`.
//
// Strokes are kept as points in picture pixels (props.width x props.height). They are drawn
// twice: on the visible canvas, whose backing store follows the screen's pixels (sharp on
// high-DPI screens, at any displayed size), and on an off-screen canvas of the picture's own
// size, which is what is sent. Setting props.value sends it: Gradio fires the component's
// change event with the value, a PNG data URL, and no file upload.
//   props.value = {png: "data:image/png;base64,...", pen_up: false}  // while the pen moves
//   props.value = {png: ..., pen_up: true}  // the picture as it stands: pen up, Undo, Clear

const WIDTH = props.width;
const HEIGHT = props.height;
const BRUSH = props.brush_width; // picture pixels
const SEND_EVERY_MS = props.send_every_ms; // at most one picture this often while drawing

const screen = element.querySelector("canvas");
const picture = document.createElement("canvas");
picture.width = WIDTH;
picture.height = HEIGHT;
const strokes = []; // each an array of [x, y] in picture pixels
let drawing = null; // the stroke under the pen, and the pointer drawing it
let pointer = null;
let lastSent = -Infinity;
let pending = null; // the timer of the next picture sent while drawing

// A fresh sheet: white paper, then the brush (round, black) at `scale` screen pixels a
// picture pixel.
function sheet(canvas, scale) {
  const ctx = canvas.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#ffffff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  ctx.fillStyle = ctx.strokeStyle = "#000000";
  ctx.lineWidth = BRUSH;
  ctx.lineCap = ctx.lineJoin = "round";
  return ctx;
}

// One step of a stroke: a dot for its first point, then a line from the point before.
function ink(ctx, stroke, i) {
  const [x, y] = stroke[i];
  ctx.beginPath();
  if (i === 0) {
    ctx.arc(x, y, BRUSH / 2, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.moveTo(...stroke[i - 1]);
    ctx.lineTo(x, y);
    ctx.stroke();
  }
}

let screenCtx, pictureCtx;

// Both canvases redrawn from the strokes: after Undo, Clear, or a change of displayed size.
function redraw() {
  const scale = screen.width / WIDTH;
  screenCtx = sheet(screen, scale);
  pictureCtx = sheet(picture, 1);
  for (const stroke of strokes) {
    for (let i = 0; i < stroke.length; i++) {
      ink(screenCtx, stroke, i);
      ink(pictureCtx, stroke, i);
    }
  }
}

// The backing store follows the displayed size times the screen's pixel ratio.
function fit() {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(screen.clientWidth * ratio));
  if (width === screen.width) return;
  screen.width = width;
  screen.height = Math.round((width * HEIGHT) / WIDTH);
  redraw();
}

function send(penUp) {
  clearTimeout(pending);
  pending = null;
  lastSent = performance.now();
  props.value = { png: picture.toDataURL("image/png"), pen_up: penUp };
}

// While drawing: the picture now if none was sent in the last SEND_EVERY_MS, else once that
// time is up (so the last moves are never left unsent for long).
function sendSoon() {
  if (pending !== null) return;
  const wait = Math.max(0, lastSent + SEND_EVERY_MS - performance.now());
  pending = setTimeout(() => {
    pending = null;
    if (drawing) send(false);
  }, wait);
}

function at(event) {
  const box = screen.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * WIDTH) / box.width,
    ((event.clientY - box.top) * HEIGHT) / box.height,
  ];
}

function extend(point) {
  drawing.push(point);
  ink(screenCtx, drawing, drawing.length - 1);
  ink(pictureCtx, drawing, drawing.length - 1);
}

screen.addEventListener("pointerdown", (event) => {
  if (drawing || (event.pointerType === "mouse" && event.button !== 0)) return;
  event.preventDefault();
  screen.setPointerCapture(event.pointerId); // the stroke goes on off the edge
  pointer = event.pointerId;
  drawing = [];
  strokes.push(drawing);
  extend(at(event));
  sendSoon();
});

screen.addEventListener("pointermove", (event) => {
  if (!drawing || event.pointerId !== pointer) return;
  // A fast pen moves further than one event a frame: draw every point the browser saw.
  const moves = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const move of moves.length ? moves : [event]) extend(at(move));
  sendSoon();
});

function penUp(event) {
  if (!drawing || event.pointerId !== pointer) return;
  drawing = null;
  pointer = null;
  send(true);
}
screen.addEventListener("pointerup", penUp);
screen.addEventListener("pointercancel", penUp);

element.querySelector("button[aria-label='Undo']").addEventListener("click", () => {
  if (drawing) return;
  strokes.pop();
  redraw();
  send(true);
});

element.querySelector("button[aria-label='Clear']").addEventListener("click", () => {
  if (drawing) return;
  strokes.length = 0;
  redraw();
  send(true);
});

new ResizeObserver(fit).observe(screen);
fit();
redraw();
