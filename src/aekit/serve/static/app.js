// aekit serve: the page. Plain JS, no build step, no external request. Data from the server is
// only ever written with textContent or drawn on canvases, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const state = { run: null, opening: null, shape: [1, 28, 28], image: null, latent: null, paint: null, seed: 0,
  manifold: null };

function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

async function api(path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  const r = await fetch("/api/" + path, body === undefined ? { headers } :
    { method: "POST", headers, body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(typeof data.detail === "string" ? data.detail : "request failed (" + r.status + ")");
  return data;
}

function runPath(what) { return "runs/" + encodeURIComponent(state.run) + "/" + what; }

// Latest-wins per kind of request: an answer that comes back after a newer request of its kind was made
// (another stroke, image or setting, another run chosen) is dropped, so a panel shows the newest only. The
// newest request's failure is shown in place of the pictures `ids` it was to fill (and thrown on, for the
// status line); an error about an older request is as stale as its answer.
const tickets = {};

async function newest(kind, what, body, ids = []) {
  const ticket = tickets[kind] = (tickets[kind] || 0) + 1;
  try {
    const r = await api(kindPath(kind, what), body);  // on the run of the kind's panel (kindPath)
    return ticket === tickets[kind] ? r : null;
  } catch (e) {
    if (ticket !== tickets[kind]) return null;
    for (const id of ids) placeholder(id, e.message, "error");
    throw e;
  }
}

// Latest-wins with a minimum gap: while drawing, at most one request per `gap` ms, and the last
// stroke is always sent.
function throttled(fn, gap) {
  let busy = false, again = false, last = 0;
  return async function run() {
    if (busy) { again = true; return; }
    busy = true;
    const wait = Math.max(0, last + gap - Date.now());
    if (wait) await new Promise((ok) => setTimeout(ok, wait));
    last = Date.now();
    try { await fn(); setStatus(""); } catch (e) { setStatus(e.message, true); }
    busy = false;
    if (again) { again = false; run(); }
  };
}

function drawImage(canvas, img, colormap) {
  const [c, h, w] = img.shape.length === 3 ? img.shape : [1, ...img.shape];
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(w, h);
  let peak = 1e-12;
  if (colormap) for (const v of img.data) peak = Math.max(peak, v);
  for (let i = 0; i < h * w; i++) {
    const px = [0, 1, 2].map((k) => img.data[(c === 3 ? k : 0) * h * w + i]);
    if (colormap) { const v = px[0] / peak; px[0] = v; px[1] = v * v * 0.6; px[2] = 0.15 * (1 - v); }
    for (let k = 0; k < 3; k++) out.data[4 * i + k] = Math.round(255 * Math.min(1, Math.max(0, px[k])));
    out.data[4 * i + 3] = 255;
  }
  ctx.putImageData(out, 0, 0);
  painted(canvas);
}

// --- placeholders ------------------------------------------------------------------------
// A picture not drawn yet is a box of its size that says so, never a blank black box: "loading…" until
// the first answer, what to do where it waits for the user, or the error of the call that was to fill it.
// Each output canvas sits in a .slot holding its words; a box of tiles holds its words alone.
const LOADING = "loading\u2026";

function slotOf(canvas) {
  if (canvas.parentElement.classList.contains("slot")) return canvas.parentElement;
  const slot = document.createElement("span"), words = document.createElement("span");
  slot.className = "slot"; words.className = "placeholder";
  canvas.replaceWith(slot);
  slot.append(canvas, words);
  return slot;
}

// Words in place of picture `id` (a canvas or a box of tiles): kind "loading", "idle" (waits for the user)
// or "error".
function placeholder(id, text, kind = "loading") {
  const el = typeof id === "string" ? $(id) : id;
  if (!el) return;
  if (el.tagName !== "CANVAS") {
    const words = document.createElement("span");
    words.className = "placeholder" + (kind === "error" ? " error" : "");
    words.textContent = text;
    el.replaceChildren(words);
    return;
  }
  const slot = slotOf(el);
  slot.dataset.state = kind;
  slot.lastChild.textContent = text;
}

// Picture `canvas` is drawn: its words go. (Any canvas drawn by this page's own code calls this.)
function painted(canvas) {
  const slot = canvas.parentElement;
  if (slot && slot.classList.contains("slot")) delete slot.dataset.state;
}

// Every output canvas says "loading…" until its first answer; those that wait for the user say what to do.
function placeholders() {
  for (const c of document.querySelectorAll("main canvas")) if (!c.classList.contains("pad")) placeholder(c, LOADING);
  placeholder("hover-img", "hover a point of the map", "idle");
  placeholder("manifold-img", "click the manifold", "idle");
  placeholder("loss", "the loss of a job, epoch by epoch, once one is started here", "idle");
}

// --- charts ---------------------------------------------------------------------------------
// Chart colours come from the style sheet's custom properties, so a chart follows the colour scheme.
function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

// Axes on `box` of a chart: x and y ticks {values, digits} at positions X(v) and Y(v), each axis named.
function axes(ctx, box, x, y) {
  ctx.strokeStyle = css("--chart-ink"); ctx.fillStyle = css("--chart-ink"); ctx.lineWidth = 1;
  ctx.font = "10px system-ui, sans-serif";
  ctx.beginPath(); ctx.moveTo(box.l, box.t); ctx.lineTo(box.l, box.b); ctx.lineTo(box.r, box.b); ctx.stroke();
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const v of y.ticks.values) {
    ctx.fillRect(box.l - 4, y.Y(v), 4, 1); ctx.fillText(v.toFixed(y.ticks.digits), box.l - 6, y.Y(v));
  }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const v of x.ticks.values) { ctx.fillRect(x.X(v), box.b, 1, 4); ctx.fillText(String(v), x.X(v), box.b + 6); }
  ctx.fillText(x.label, (box.l + box.r) / 2, box.b + 18);
  ctx.save(); ctx.translate(9, (box.t + box.b) / 2); ctx.rotate(-Math.PI / 2); ctx.textBaseline = "middle";
  ctx.fillText(y.label, 0, 0); ctx.restore();
}

// The code as bars on axes: dimension index along x, value along y (round ticks covering every value, zero
// marked); positive values in the first series colour, negative in the second, bar `hi` outlined (hovered).
// The values and layout stay on the canvas (canvas.chart) for the hover readout.
function drawBars(canvas, code, hi = -1, names = { x: "dimension", y: "value" }) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  const box = { l: 44, r: W - 8, t: 8, b: H - 32 };
  ctx.clearRect(0, 0, W, H);
  const yt = niceTicks(Math.min(0, ...code), Math.max(0, ...code), 4);
  const y0 = yt.values[0], y1 = yt.values[yt.values.length - 1], bw = (box.r - box.l) / code.length;
  const Y = (v) => box.b - (v - y0) / (y1 - y0 || 1) * (box.b - box.t), X = (i) => box.l + (i + 0.5) * bw;
  const xt = niceTicks(0, code.length - 1, Math.min(8, code.length), 1);
  axes(ctx, box, { ticks: { values: xt.values.filter((i) => i < code.length) }, X, label: names.x },
    { ticks: yt, Y, label: names.y });
  ctx.fillStyle = css("--chart-grid"); ctx.fillRect(box.l, Y(0), box.r - box.l, 1);
  code.forEach((v, i) => {
    ctx.fillStyle = css(v >= 0 ? "--series-1" : "--series-2");
    const top = Math.min(Y(v), Y(0)), h = Math.max(1, Math.abs(Y(v) - Y(0)));
    ctx.fillRect(box.l + i * bw + (bw > 4 ? 1 : 0), top, Math.max(1, bw - (bw > 4 ? 2 : 0)), h);
    if (i === hi) { ctx.strokeStyle = css("--marker"); ctx.strokeRect(box.l + i * bw, top - 1, bw, h + 2); }
  });
  canvas.chart = { values: code, box, bw, names };
  const shown = code.slice(0, 8).map((v) => v.toFixed(2)).join(", ") + (code.length > 8 ? ", \u2026" : "");
  canvas.setAttribute("aria-label", `bar chart of ${code.length} ${names.y}s by ${names.x}: ${shown}`);
  painted(canvas);
}

// Hovering a bar chart: its value in words (readout `out`) and the bar outlined.
function barHover(canvas, out, e) {
  const C = canvas.chart;
  if (!C) return;
  const b = canvas.getBoundingClientRect(), x = (e.clientX - b.left) * canvas.width / b.width;
  const i = Math.floor((x - C.box.l) / C.bw);
  if (i < 0 || i >= C.values.length) return;
  $(out).textContent = `${C.names.x} ${i}: ${C.names.y} ${C.values[i].toFixed(3)}`;
  drawBars(canvas, C.values, i, C.names);
}

// --- model picker -------------------------------------------------------------------------
// One option per run. A run the panels cannot use (a classifier, an unreadable folder) is listed but
// disabled, saying why: picking it could only give an error.
function runOption(r) {
  const o = document.createElement("option");
  o.value = r.id;
  const sse = typeof r.sse_per_image === "number" ? r.sse_per_image.toFixed(2) : "?";
  if (r.error) o.textContent = r.id + " (unreadable)";
  else if (!r.usable) o.textContent = `${r.id}: ${r.architecture}, ${r.note || "not for these panels"}`;
  else o.textContent = `${r.id}: ${r.family} ${r.architecture}, ${r.dataset}, test sse/image ${sse}`;
  o.disabled = !r.usable;
  return o;
}

function showRunInfo(r) {
  $("run-info").textContent = `${r.family} ${r.architecture}, data ${r.dataset}`;
  showTopUses(r);
}

// The picker from GET /api/runs: at start, every few seconds, when the tab gets focus and when a job
// ends (the server looks at its runs folder again: a run trained with the CLI appears, a removed one
// goes). The options are rebuilt only when the listing changed, and the run shown stays chosen (its
// panels untouched); only when it is gone is another one opened.
async function loadRuns() {
  const runs = await api("runs");
  const sel = $("run"), listing = JSON.stringify(runs);
  if (listing === sel.listing) return;
  sel.listing = listing;
  sel.runs = runs;
  sel.replaceChildren(...runs.map(runOption));
  const shown = runs.find((r) => r.id === state.run && r.usable);
  sel.value = state.opening || (shown ? shown.id : "");
  if (shown) showRunInfo(shown);
  // the run shown, or the one being opened, stays chosen; the task panels take a new run of their task
  if (shown || state.opening) { await refreshPanels(assignPanelRuns()); return; }
  for (const r of topOrder(runs)) if (await chooseRun(r.id)) return;  // the first that opens
  if (!runs.some((r) => r.usable)) {
    state.run = null;
    await refreshPanels(assignPanelRuns());
    setStatus("no autoencoder run to show yet: train one in the Train panel (runs being trained show there)", true);
  }
}

// The number of test images a run offers: the inputs that pick them say their range.
function showTestRange(total) {
  const last = Math.max(0, total - 1);
  for (const id of ["pick-index", "blend-a", "blend-b"]) {
    $(id).max = String(last);
    if (Number($(id).value) > last) $(id).value = String(last);
  }
  for (const id of ["pick-range", "blend-range"]) $(id).textContent = total ? `0\u2013${last}` : "no test images";
}

let choice = 0;  // the latest choice of run: one that finishes opening after a newer choice is dropped

// Shows run `id` in every panel; false where it could not be opened (the run shown before stays).
async function chooseRun(id) {
  const sel = $("run"), r = sel.runs.find((x) => x.id === id), ticket = ++choice;
  state.opening = id;
  setStatus("opening " + id + " ...");
  // Open the run first (seconds, once per run): where that fails, the run shown before stays shown,
  // header, picker and panels alike, and the status line says why.
  let first;
  try {
    first = await api(`runs/${encodeURIComponent(id)}/samples?start=0&n=1`);
  } catch (e) {
    if (ticket !== choice) return true;  // another choice took over: not this one's to retry
    state.opening = null;
    sel.value = state.run || "";
    setStatus(`${id} could not be opened: ${e.message}`, true);
    return false;
  }
  if (ticket !== choice) return true;
  const sameShape = JSON.stringify(r.input_shape || [1, 28, 28]) === JSON.stringify(state.shape);
  state.opening = null;
  state.run = id;
  sel.value = id;
  state.shape = r.input_shape || [1, 28, 28];
  showRunInfo(r);
  showTestRange(first.total);
  for (const k of Object.keys(tickets)) tickets[k]++;  // late answers about the run shown before are dropped
  // Each task panel takes its run anew (Denoise and Infill may follow this one); Sample is shown here, the
  // panels of the pad's image by update() below. Its error is shown once the others are done.
  const sampling = refreshPanels(assignPanelRuns().filter((n) => n === "sample")).then(() => null, (e) => e);
  // A conditional VAE encodes and reconstructs only with each image's label: the panels above have none
  // (and without an image, a reconstruction or denoising still queued for the run before is not sent).
  if (r.conditional) {
    state.image = null;
    state.latent = null;  // nor do its pictures stay: they were the run before's
    $("score").textContent = "";
    const why = `${id} is a conditional VAE: it encodes only with each image's label (see the Sample panel)`;
    for (const c of ["input", "recon", "errmap", "code", "linear-pca", "linear-model", "blend-decoded", "blend-fade",
      "latent"]) placeholder(c, why, "idle");
  } else {
    // The image on the pad stays (a drawing, an upload) where the new run takes its shape: runs compare on it.
    if (state.image && sameShape) await update();
    else await pickTest(Number($("pick-index").value) || 0);
    if (state.run === id) await Promise.all([loadLatent(), blend()]);  // unless another run was chosen meanwhile
  }
  const failed = await sampling;
  if (state.run === id) setStatus(failed ? failed.message : "", Boolean(failed));
  return true;
}

// --- draw or pick -------------------------------------------------------------------------
const pad = $("draw"), padCtx = pad.getContext("2d");
function clearPad() { padCtx.fillStyle = "#000"; padCtx.fillRect(0, 0, pad.width, pad.height); }

function padImage() {
  const [c, h, w] = state.shape, small = document.createElement("canvas");
  small.width = w; small.height = h;
  const s = small.getContext("2d");
  s.imageSmoothingEnabled = true; s.imageSmoothingQuality = "high";
  s.drawImage(pad, 0, 0, w, h);
  const px = s.getImageData(0, 0, w, h).data, data = [];
  for (let k = 0; k < c; k++) for (let i = 0; i < h * w; i++) data.push(px[4 * i] / 255);
  return { shape: state.shape, data };
}

function showOnPad(img) {
  const tmp = document.createElement("canvas");
  drawImage(tmp, img);
  clearPad();
  padCtx.imageSmoothingEnabled = false;
  padCtx.drawImage(tmp, 0, 0, pad.width, pad.height);
}

const FIRST_PAINT = "aekit:first-reconstruction";  // a performance mark: the cold page's first meaningful paint

async function reconstruct() {
  if (!state.image) return;
  const r = await newest("recon", "reconstruct", { image: state.image.data }, ["input", "recon", "errmap", "code"]);
  if (!r) return;  // a newer drawing or image went out meanwhile: its answer is the one to show
  drawImage($("input"), r.input); drawImage($("recon"), r.recon); drawImage($("errmap"), r.error_map, true);
  drawBars($("code"), r.code.data);
  $("score").textContent = `anomaly score ${r.score.toFixed(2)} vs threshold ${r.threshold.toFixed(2)}: ` +
    (r.anomaly ? "anomalous" : "normal");
  $("score").classList.toggle("bad", r.anomaly);
  if (!performance.getEntriesByName(FIRST_PAINT).length) performance.mark(FIRST_PAINT);
}

// The drawing's own reconstruction first, then the panels that use the image; a failure of one is shown in
// its own place and the others still answer.
const update = throttled(async () => {
  const failed = await reconstruct().then(() => null, (e) => e);
  sidePanels();  // not waited for: their errors are shown in place
  await Promise.all([denoise(), infill()]);
  if (failed) throw failed;
}, 150);
const liveRecon = throttled(reconstruct, 120);

// A new image on the pad (a test image, an upload, a cleared pad): a hole painted for the last one
// and the words about an upload belong to that image, not this one.
function newImage(img, note) {
  state.image = img;
  clearMask();
  $("input-note").textContent = note || "";
}

async function pickTest(index) {
  const r = await newest("image", `samples?start=${index}&n=1`);
  if (!r) return;  // another image was picked, uploaded or drawn meanwhile
  if (!r.images.length) throw new Error("no test image " + index);
  newImage(r.images[0]);
  showOnPad(state.image);
  await update();
}

// The keyboard route of a canvas drawn on with a pointer (the pad, the paintable mask): with the canvas
// focused from the keyboard, the arrow keys move a cursor by one image pixel (four with Shift) and Space
// or Enter presses there. The cursor is a box over the canvas, never drawn on it: what the canvas holds is
// the picture. It covers the pixels a press changes (`reach` either side of the cursor's pixel). A click
// does not focus the canvas (a pointer draws by itself), so Space after a stroke still scrolls the page.
function keyboardCursor(canvas, reach, onKey) {
  const box = document.createElement("div");
  box.className = "key-cursor"; box.hidden = true; box.setAttribute("aria-hidden", "true");
  canvas.parentElement.classList.add("keyed");  // positions the box
  canvas.after(box);
  const at = { x: -1, y: -1 };
  let shape = "";
  const clamp = () => {  // onto the image, whose shape a new run may have changed: its centre then
    const [, h, w] = state.shape;
    if (String(state.shape) !== shape || at.x < 0) { shape = String(state.shape); at.x = w >> 1; at.y = h >> 1; }
    at.x = Math.min(w - 1, Math.max(0, at.x)); at.y = Math.min(h - 1, Math.max(0, at.y));
  };
  const place = () => {  // clamps, then puts the box over the cursor's pixels
    clamp();
    if (box.hidden) return;
    const [, h, w] = state.shape, cw = canvas.clientWidth / w, ch = canvas.clientHeight / h;
    const x0 = Math.max(0, at.x - reach), x1 = Math.min(w - 1, at.x + reach);
    const y0 = Math.max(0, at.y - reach), y1 = Math.min(h - 1, at.y + reach);
    box.style.left = `${canvas.offsetLeft + canvas.clientLeft + x0 * cw}px`;
    box.style.top = `${canvas.offsetTop + canvas.clientTop + y0 * ch}px`;
    box.style.width = `${(x1 - x0 + 1) * cw}px`; box.style.height = `${(y1 - y0 + 1) * ch}px`;
  };
  new ResizeObserver(place).observe(canvas);
  canvas.addEventListener("mousedown", (e) => e.preventDefault());  // no focus from a click
  canvas.addEventListener("focus", () => { box.hidden = false; place(); });
  canvas.addEventListener("blur", () => { box.hidden = true; onKey("blur", at, box); });
  const STEPS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  canvas.addEventListener("keydown", (e) => {
    const d = STEPS[e.key];
    if (d) {
      e.preventDefault();
      clamp();  // first: a new shape re-centres the cursor before it moves
      const n = e.shiftKey ? 4 : 1, from = { ...at };
      at.x += d[0] * n; at.y += d[1] * n;
      place(); onKey("move", at, box, from);
    } else if (e.key === " " || e.key === "Enter") {
      e.preventDefault();
      if (e.repeat) return;  // a held key presses once
      place(); onKey("press", at, box);
    }
  });
}

function strokes() {
  let down = false, last = null;
  const at = (e) => {
    const b = pad.getBoundingClientRect();
    return [(e.clientX - b.left) * pad.width / b.width, (e.clientY - b.top) * pad.height / b.height];
  };
  const line = (from, to) => {
    padCtx.strokeStyle = "#fff"; padCtx.lineWidth = pad.width / 12; padCtx.lineCap = "round";
    padCtx.beginPath(); padCtx.moveTo(...from); padCtx.lineTo(...to); padCtx.stroke();
    tickets.image = (tickets.image || 0) + 1;  // a pick or upload still on its way is older than this drawing
    state.image = padImage();
    liveRecon();
  };
  pad.addEventListener("pointerdown", (e) => { down = true; last = at(e); pad.setPointerCapture(e.pointerId); });
  pad.addEventListener("pointermove", (e) => {
    if (!down) return;
    const p = at(e);
    line(last, p);
    last = p;
  });
  const end = () => { if (down) { down = false; state.image = padImage(); update(); } };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
  // From the keyboard: Space or Enter lowers the pen (a dot) or lifts it (the drawing's reconstruction, as a
  // pointer's lifting makes); the arrows draw while it is down. Leaving the pad lifts it.
  let pen = false;
  const centre = (c) => {
    const [, h, w] = state.shape;
    return [(c.x + 0.5) * pad.width / w, (c.y + 0.5) * pad.height / h];
  };
  const dot = (c) => { const [x, y] = centre(c); line([x, y], [x + 0.01, y]); };  // a round cap on a tiny line
  const label = pad.getAttribute("aria-label");
  const setPen = (on, box) => {
    pen = on; box.classList.toggle("down", on);
    pad.setAttribute("aria-label", `${label} (pen ${on ? "down: the arrow keys draw" : "up"})`);
    if (!on) { state.image = padImage(); update(); }
  };
  keyboardCursor(pad, 0, (what, c, box, from) => {
    if (what === "press") { setPen(!pen, box); if (pen) dot(c); }
    else if (what === "move" && pen) line(centre(from), centre(c));
    else if (what === "blur" && pen) setPen(false, box);
  });
}

async function upload(file) {
  const b64 = await new Promise((ok, fail) => {
    const rd = new FileReader();
    rd.onload = () => ok(rd.result); rd.onerror = () => fail(new Error("could not read the file"));
    rd.readAsDataURL(file);
  });
  // The server makes the picture the model's input (grey, scaled and padded keeping its aspect ratio,
  // inverted to the training images' polarity) and says what it did: that input is what the pad shows.
  const r = await newest("image", "reconstruct", { image: b64 });
  if (!r) return;
  const done = r.preprocessing || [];
  newImage(r.input, "model input: " + (done.length ? done.join("; ") : "the picture as it is"));
  showOnPad(state.image);
  await update();
}

// --- denoise, infill, blend ----------------------------------------------------------------
// A PSNR is null where the image equals the original exactly (no error: infinite dB).
function dB(v) { return v === null ? "exact (\u221e dB)" : v.toFixed(2) + " dB"; }

async function denoise() {
  if (!state.image || !panelRun.denoise) return;
  const level = Number($("noise-level").value);
  $("noise-level-text").textContent = level.toFixed(2);
  const r = await newest("denoise", "denoise", { image: state.image.data, noise: $("noise-kind").value, level },
    ["noisy", "denoised", "baseline"]);
  if (!r) return;
  drawImage($("noisy"), r.noisy); drawImage($("denoised"), r.model); drawImage($("baseline"), r.baseline);
  $("psnr-noisy").textContent = dB(r.psnr_noisy);
  $("psnr-model").textContent = dB(r.psnr_model);
  $("psnr-base").textContent = dB(r.psnr_baseline);
  $("base-name").textContent = r.baseline_name.replace(/_/g, " ");
}

async function infill() {
  if (!state.image || state.shape.length !== 3 || !panelRun.infill) return;
  const iters = Number($("iters").value), kind = $("mask-kind").value;
  $("iters-text").textContent = String(iters);
  const [, h, w] = state.shape;
  if (kind === "paint" && (!state.paint || state.paint.length !== h * w)) state.paint = new Array(h * w).fill(0);
  if (kind === "paint" && !state.paint.some((v) => v)) {  // nothing to fill yet: no fill shown either
    tickets.infill = (tickets.infill || 0) + 1;  // nor a fill still on its way for a mask now gone
    drawImage($("masked"), state.image);
    for (const id of ["filled", "meanfill"]) {
      $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height);
      placeholder(id, "paint a hole on the left", "idle");
    }
    $("psnr-fill").textContent = "paint a hole"; $("psnr-mean").textContent = "";
    return;
  }
  const mask = kind === "paint" ? state.paint : kind;
  const r = await newest("infill", "inpaint", { image: state.image.data, mask, iters }, ["masked", "filled", "meanfill"]);
  if (!r) return;
  drawImage($("masked"), r.masked); drawImage($("filled"), r.model); drawImage($("meanfill"), r.mean_fill);
  $("psnr-fill").textContent = dB(r.psnr_model);
  $("psnr-mean").textContent = dB(r.psnr_mean);
}

// The painted hole is forgotten by the Clear mask button, by another mask kind and with a new image.
function clearMask() { state.paint = null; }

function maskKindChanged() {
  if ($("mask-kind").value !== "paint") clearMask();
  runInfill();
}

function painting() {
  const c = $("masked");
  let down = false;
  const start = () => {
    $("mask-kind").value = "paint";
    const [, h, w] = state.shape;
    if (!state.paint || state.paint.length !== h * w) state.paint = new Array(h * w).fill(0);
  };
  const paintCell = (x, y) => {  // the 3x3 square around image pixel (x, y)
    const [, h, w] = state.shape;
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      const yy = y + dy, xx = x + dx;
      if (yy >= 0 && yy < h && xx >= 0 && xx < w) state.paint[yy * w + xx] = 1;
    }
    const ctx = c.getContext("2d");
    ctx.fillStyle = "#888"; ctx.fillRect(x - 1, y - 1, 3, 3);
  };
  const paintAt = (e) => {
    const b = c.getBoundingClientRect(), [, h, w] = state.shape;
    paintCell(Math.floor((e.clientX - b.left) * w / b.width), Math.floor((e.clientY - b.top) * h / b.height));
  };
  c.addEventListener("pointerdown", (e) => {
    start();
    down = true; c.setPointerCapture(e.pointerId); paintAt(e);
  });
  c.addEventListener("pointermove", (e) => { if (down) paintAt(e); });
  c.addEventListener("pointerup", () => { down = false; runInfill(); });
  // From the keyboard: Space or Enter paints the 3x3 square the cursor covers, and the fill follows.
  keyboardCursor(c, 1, (what, at) => { if (what === "press") { start(); paintCell(at.x, at.y); runInfill(); } });
}

const runDenoise = throttled(denoise, 100), runInfill = throttled(infill, 100);

async function blend() {
  const r = await newest("blend", "interpolate", { a_index: Number($("blend-a").value) || 0,
    b_index: Number($("blend-b").value) || 0, t: Number($("blend-t").value) }, ["blend-decoded", "blend-fade"]);
  if (!r) return;
  drawImage($("blend-decoded"), r.decoded); drawImage($("blend-fade"), r.fade);
}
const runBlend = throttled(blend, 80);

// --- latent map ---------------------------------------------------------------------------
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];

async function loadLatent() {
  const L = await newest("latent", "latent", undefined, ["latent"]);
  if (!L) return;  // another run's map was asked for since
  const xs = L.points.map((p) => p[0]), ys = L.points.map((p) => p[1]);
  const lo = [Math.min(...xs), Math.min(...ys)], hi = [Math.max(...xs), Math.max(...ys)];
  const c = $("latent"), pad = 10;
  const toPx = (p) => [pad + (p[0] - lo[0]) / (hi[0] - lo[0] || 1) * (c.width - 2 * pad),
    c.height - pad - (p[1] - lo[1]) / (hi[1] - lo[1] || 1) * (c.height - 2 * pad)];
  const fromPx = (x, y) => [lo[0] + (x - pad) / (c.width - 2 * pad) * (hi[0] - lo[0]),
    lo[1] + (c.height - pad - y) / (c.height - 2 * pad) * (hi[1] - lo[1])];
  state.latent = { ...L, px: L.points.map(toPx), fromPx, mark: null };
  drawLatent();
  latentLegend(L.labels);
  hoverIndex = -1;  // the run before's hovered image goes with its map
  tickets.hover = (tickets.hover || 0) + 1;  // and one still on its way
  for (const id of ["hover-img", "hover-recon"]) $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height);
  placeholder("hover-img", "hover a point of the map", "idle");
  $("hover-label").textContent = "hover a point";
  $("latent-readout").textContent = "";
  showHover(false);
  $("latent-info").textContent = (L.method === "code" ? "the code itself" : `PCA of ${L.code_size}-number codes`) +
    `, ${L.points.length} test images` + (L.code_size === 2 ? "; click empty space to decode it" : "");
}

// The points in their label's colour, a ring round the point shown (hovered, or stepped to with the arrow
// keys), and a ring and cross where the map was last clicked.
function drawLatent() {
  const L = state.latent, c = $("latent"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  L.px.forEach((p, i) => {
    ctx.fillStyle = L.labels ? PALETTE[L.labels[i] % 10] : css("--series-1");
    ctx.fillRect(p[0] - 2, p[1] - 2, 4, 4);
  });
  painted(c);
  ctx.strokeStyle = css("--marker"); ctx.lineWidth = 2;
  if (hoverIndex >= 0 && hoverIndex < L.px.length) {
    ctx.beginPath(); ctx.arc(...L.px[hoverIndex], 5, 0, 2 * Math.PI); ctx.stroke();
  }
  if (!L.mark) return;
  const [x, y] = L.mark;
  ctx.beginPath(); ctx.arc(x, y, 7, 0, 2 * Math.PI); ctx.stroke();
  ctx.beginPath(); ctx.moveTo(x - 11, y); ctx.lineTo(x + 11, y); ctx.moveTo(x, y - 11); ctx.lineTo(x, y + 11);
  ctx.stroke();
}

// Which colour is which label (the labels present, in order); nothing for a dataset without labels.
function latentLegend(labels) {
  const seen = labels ? [...new Set(labels)].sort((a, b) => a - b) : [];
  $("latent-legend").replaceChildren(...seen.map((v) => legendItem(PALETTE[v % 10], String(v))));
}

function legendItem(colour, text) {
  const li = document.createElement("li"), swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.backgroundColor = colour;  // a style property set from script: allowed by the page's policy
  li.append(swatch, text);
  return li;
}

// Beside the map: a test image over its reconstruction (hover), or one decoded point alone (click).
function showHover(withRecon) { $("hover-recon-box").hidden = !withRecon; }

function mapPoint(e) {
  const c = $("latent"), b = c.getBoundingClientRect();
  return [(e.clientX - b.left) * c.width / b.width, (e.clientY - b.top) * c.height / b.height];
}

function nearest(x, y) {
  let best = -1, bd = Infinity;
  state.latent.px.forEach((p, i) => { const d = (p[0] - x) ** 2 + (p[1] - y) ** 2; if (d < bd) { bd = d; best = i; } });
  return [best, Math.sqrt(bd)];
}

// What the map's axes are: the code's two numbers, or its first two principal components.
function mapAxes() { return state.latent.method === "code" ? ["z0", "z1"] : ["PC 1", "PC 2"]; }

// The point under the pointer (or the keyboard's) in words: a test image, its label and its place; or
// the place alone, in the map's coordinates.
function latentReadout(i, x, y) {
  const L = state.latent, [a, b] = mapAxes();
  if (i >= 0) {
    const lab = L.labels ? `, label ${L.labels[i]}` : "", [u, v] = L.points[i];
    $("latent-readout").textContent = `test image ${i}${lab}: ${a} ${u.toFixed(2)}, ${b} ${v.toFixed(2)}`;
  } else {
    const [u, v] = L.fromPx(x, y);
    $("latent-readout").textContent = `${a} ${u.toFixed(2)}, ${b} ${v.toFixed(2)}`;
  }
}

let hoverIndex = -1;
const hover = throttled(async () => {
  if (hoverIndex < 0) return;
  const i = hoverIndex;
  const r = await newest("hover", "reconstruct", { index: i }, ["hover-img"]);
  if (!r) return;  // the pointer moved on to another point, or the map was clicked
  drawImage($("hover-img"), r.input); drawImage($("hover-recon"), r.recon);
  showHover(true);
  const lab = state.latent.labels ? ", label " + state.latent.labels[i] : "";
  $("hover-label").textContent = "test image " + i + lab;
}, 60);

// Step the shown point through the test images with the arrow keys: the map is usable without a pointer.
function latentKey(e) {
  const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
  if (!state.latent || !step) return;
  e.preventDefault();
  const n = state.latent.px.length;
  hoverIndex = hoverIndex < 0 ? (step > 0 ? 0 : n - 1) : (hoverIndex + step + n) % n;
  latentReadout(hoverIndex);
  drawLatent();
  hover();
}

function latentEvents() {
  $("latent").addEventListener("pointermove", (e) => {
    if (!state.latent) return;
    const [x, y] = mapPoint(e), [i, d] = nearest(x, y);
    latentReadout(d < 8 ? i : -1, x, y);
    if (d < 8 && i !== hoverIndex) { hoverIndex = i; drawLatent(); hover(); }
  });
  $("latent").addEventListener("keydown", latentKey);
  $("latent").addEventListener("click", async (e) => {
    if (!state.latent || state.latent.code_size !== 2) return;
    const [x, y] = mapPoint(e), [, d] = nearest(x, y);
    if (d < 8) return;
    const [zx, zy] = state.latent.fromPx(x, y);
    state.latent.mark = [x, y];
    hoverIndex = -1;  // hovering the point shown before shows it again
    drawLatent();
    try {
      const r = await newest("hover", "latent/decode", { x: zx, y: zy }, ["hover-img"]);
      if (!r) return;  // another point was clicked or hovered since
      drawImage($("hover-img"), r.image);
      showHover(false);  // a decoded point has no reconstruction: shown once
      $("hover-label").textContent = `decoded (${zx.toFixed(2)}, ${zy.toFixed(2)})`;
    } catch (err) { setStatus(err.message, true); }
  });
}

// --- sample (variational runs) -------------------------------------------------------------
// Each request goes through newest() (above): an answer that comes back after a newer request of its kind
// was made (the slider moved on, another run was chosen) is dropped, so the panel shows the newest only.
const SAMPLE_KINDS = ["sample", "traverse", "manifold", "point"];

// The label of a conditional run; undefined (left out of the JSON) for an unconditional one.
function sampleLabel() { return $("sample-label-box").hidden ? undefined : Number($("sample-label").value); }

function options(sel, values, text) {
  sel.replaceChildren(...values.map((v) => {
    const o = document.createElement("option"); o.value = String(v); o.textContent = text(v); return o;
  }));
}

async function samples() {
  const n = Math.min(64, Math.max(1, Math.round(Number($("sample-n").value)) || 16));
  const temperature = Number($("sample-t").value);
  $("sample-t-text").textContent = temperature.toFixed(1);
  const r = await newest("sample", "sample", { n, temperature, seed: state.seed, label: sampleLabel() },
    ["sample-grid"]);
  if (r) $("sample-grid").replaceChildren(...batchCanvases(r.images));
}

async function traverseDim() {
  const d = Number($("traverse-dim").value);
  const r = await newest("traverse", "traverse", { dims: [d], steps: 9, span: 3, label: sampleLabel() },
    ["traverse-strip"]);
  if (r) $("traverse-strip").replaceChildren(...batchCanvases({ shape: r.strips.shape.slice(1), data: r.strips.data }));
}

// The decoded grid of a 2-number code on one canvas; its codes map a click to the point under it.
async function loadManifold() {
  const label = sampleLabel();
  const r = await newest("manifold", "manifold", { grid: 12, label }, ["manifold"]);
  if (!r) return;
  const [g, , ...shape] = r.images.shape, c = $("manifold");
  const tiles = batchCanvases({ shape: [g * g, ...shape], data: r.images.data });
  c.width = g * tiles[0].width; c.height = g * tiles[0].height;
  const ctx = c.getContext("2d");
  tiles.forEach((t, k) => ctx.drawImage(t, (k % g) * t.width, Math.floor(k / g) * t.height));
  painted(c);
  state.manifold = { codes: r.codes, label };
  manifoldCell = null;
}

// Rows run from high to low z1 and columns from low to high z0 (quantiles: not evenly spaced), so a
// click between cell centres decodes the code between theirs.
async function decodeManifoldPoint(e) {
  const M = state.manifold;
  if (!M) return;
  const b = $("manifold").getBoundingClientRect(), g = M.codes.length;
  const at = (p) => Math.min(g - 1, Math.max(0, p * g - 0.5));
  const fx = at((e.clientX - b.left) / b.width), fy = at((e.clientY - b.top) / b.height);
  const j = Math.min(Math.floor(fx), g - 2), i = Math.min(Math.floor(fy), g - 2);
  const z0 = M.codes[0][j][0] + (M.codes[0][j + 1][0] - M.codes[0][j][0]) * (fx - j);
  const z1 = M.codes[i][0][1] + (M.codes[i + 1][0][1] - M.codes[i][0][1]) * (fy - i);
  await decodeManifoldCode(z0, z1, M.label);
}

async function decodeManifoldCode(z0, z1, label) {
  const r = await newest("point", "latent/decode", { x: z0, y: z1, label }, ["manifold-img"]);
  if (!r) return;
  drawImage($("manifold-img"), r.image);
  $("manifold-label").textContent = `decoded z = (${z0.toFixed(2)}, ${z1.toFixed(2)})`;
}

// The manifold with the keyboard: the arrow keys move from cell to cell (the first press starts at the top
// left) and decode the cell's code, as a click on its centre does.
let manifoldCell = null;
async function manifoldKey(e) {
  const M = state.manifold, d = { ArrowRight: [0, 1], ArrowLeft: [0, -1], ArrowDown: [1, 0], ArrowUp: [-1, 0] }[e.key];
  if (!M || !d) return;
  e.preventDefault();
  const g = M.codes.length;
  manifoldCell = manifoldCell ? [(manifoldCell[0] + d[0] + g) % g, (manifoldCell[1] + d[1] + g) % g] : [0, 0];
  const [z0, z1] = M.codes[manifoldCell[0]][manifoldCell[1]];
  await decodeManifoldCode(z0, z1, M.label);
}

// The panel for the run chosen: its controls for a VAE run, else one line saying why there are none.
async function showSampler(r) {
  for (const k of SAMPLE_KINDS) tickets[k] = (tickets[k] || 0) + 1;  // late answers about the run before: dropped
  state.manifold = null;
  for (const id of ["sample-grid", "traverse-strip"]) placeholder(id, LOADING);
  const vae = Boolean(r.variational);
  $("sample-body").hidden = !vae;
  if (!vae) {
    $("sample-info").textContent = `Sampling needs a variational run (model vae); ${r.id} is ${r.family}.`;
    return;
  }
  $("sample-info").textContent = `Decoded draws from the prior of a ${r.code}-number code` + (r.conditional ?
    `, for the label picked (a conditional VAE: the panels above need each image's label and are not updated)` :
    "") + ".";
  $("sample-label-box").hidden = !r.conditional;
  if (r.conditional) options($("sample-label"), [...Array(r.n_classes).keys()], String);
  options($("traverse-dim"), [...Array(Math.min(r.code, 64)).keys()], (d) => "z" + d);
  $("manifold-box").hidden = r.code !== 2;
  for (const id of ["manifold", "manifold-img"]) $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height);
  placeholder("manifold", LOADING);
  placeholder("manifold-img", "click the manifold", "idle");
  $("manifold-label").textContent = "click the manifold";
  await Promise.all([samples(), traverseDim(), r.code === 2 ? loadManifold() : null]);
}

const runSamples = throttled(samples, 80), runTraverse = throttled(traverseDim, 80);
const runLabel = throttled(() => Promise.all([samples(), traverseDim(),
  $("manifold-box").hidden ? null : loadManifold()]), 80);

// --- the right model for each panel ---------------------------------------------------------
// Denoise, Infill, Sample and Classify each use a run trained for their task (GET /api/runs gives each
// run's `tasks`, read from its config): by default the newest such run, else (Denoise, Infill) the run
// picked at the top, saying that it was never trained for this. Each has its own picker; a run picked
// there stays while it is served. Where no run was trained for the task, the panel says what one would
// show and offers to train it (a preset job; for Classify the pair of classifiers), or says that one is
// training. The bottleneck, Linear, Blend and Latent panels use any autoencoder: the one picked at the top.
const TASK_PANELS = {
  denoise: { task: "denoise", preset: "denoising", verb: "denoise",
    missing: "A denoising run, trained on noisy inputs with the clean images as its targets, would put back " +
      "what the noise takes away and beat the classical baselines." },
  infill: { task: "infill", preset: "infilling", verb: "fill in hidden squares",
    missing: "An infilling run, trained with squares of its inputs hidden (block:12), would guess the hidden " +
      "pixels from the rest better than the mean image does." },
  sample: { task: "sample", preset: "vae", verb: "sample",
    missing: "No variational run is served. Sampling needs one (a VAE), whose code is a distribution: here " +
      "it would show new digits decoded from draws of its prior, a temperature slider, one code number swept " +
      "at a time and, for a 2-number code, the decoded map of its code space." },
  classify: { task: "classify", preset: "classifier", verb: "classify",
    missing: "No classifier run is served. This panel would show the ten class probabilities of a classifier " +
      "fine-tuned from an autoencoder's encoder on 1,000 labels, beside the same network trained from a random " +
      "start on the same labels, each with its test accuracy." },
};
const FOLLOWS_TOP = ["denoise", "infill"];  // with no run of their task, these use the run picked at the top
const panelRun = { denoise: undefined, infill: undefined, sample: undefined, classify: undefined,
  "classify-random": undefined };  // undefined: not chosen yet; null: none to use
const panelPicked = {};  // panel -> picked in its own picker (kept while served), not chosen by default
let panelJobs = [];  // the server's jobs (GET /api/jobs), for "being trained" in place of an offer

const allRuns = () => $("run").runs || [];
const runById = (id) => allRuns().find((r) => r.id === id) || null;
const trainedFor = (r, task) => Boolean(r) && Array.isArray(r.tasks) && r.tasks.includes(task);
const takesPad = (r) => JSON.stringify(r.input_shape || [1, 28, 28]) === JSON.stringify(state.shape);
const percent = (v) => (typeof v === "number" ? (100 * v).toFixed(1) + "%" : "not recorded");

// Newest first (config.json's time), runs of the same time in the listing's order.
function newestFirst(runs) {
  const order = new Map(allRuns().map((r, i) => [r.id, i]));
  return [...runs].sort((a, b) => (b.trained_at || 0) - (a.trained_at || 0) || order.get(a.id) - order.get(b.id));
}

// The runs the page tries to open at the top, in the listing's order: plain autoencoders first (trained
// to reconstruct only: the bottleneck as the lecture first shows it), then any other usable run.
function topOrder(runs) {
  const usable = runs.filter((r) => r.usable), plain = (r) => JSON.stringify(r.tasks) === '["reconstruct"]';
  return [...usable.filter(plain), ...usable.filter((r) => !plain(r))];
}

// The runs panel `name` may use: those trained for its task first, newest first; for Denoise and Infill
// then every other autoencoder that takes the pad's images (to compare a model never trained for it).
function panelChoices(name) {
  const runs = allRuns().filter((r) => !r.error);
  if (name === "classify" || name === "classify-random") {
    const random = (r) => r.init === "random";
    return newestFirst(runs.filter((r) => trainedFor(r, "classify") && (name === "classify") !== random(r)));
  }
  const task = TASK_PANELS[name].task;
  const trained = newestFirst(runs.filter((r) => trainedFor(r, task) && (name === "sample" || takesPad(r))));
  if (!FOLLOWS_TOP.includes(name)) return trained;
  return [...trained, ...runs.filter((r) => r.usable && !trainedFor(r, task) && trainedFor(r, "reconstruct") &&
    takesPad(r))];
}

// The random-start classifier to show beside fine-tuned `pre`: fine-tuned from the same run, else of the
// same network and labels, else the newest.
function partnerOf(pre) {
  const all = panelChoices("classify-random");
  if (!pre) return all[0] || null;
  return all.find((r) => pre.parent && r.parent === pre.parent) ||
    all.find((r) => r.architecture === pre.architecture && r.labels === pre.labels) || all[0] || null;
}

// Each panel's run, from the listing: kept where picked by hand and still served, else the default.
// Returns the panels whose run changed.
function assignPanelRuns() {
  const changed = [];
  for (const name of Object.keys(panelRun)) {
    const choices = panelChoices(name), ids = choices.map((r) => r.id);
    let id = panelPicked[name] && ids.includes(panelRun[name]) ? panelRun[name] : null;
    if (!id) {
      panelPicked[name] = false;
      if (name === "classify-random") id = (partnerOf(runById(panelRun.classify)) || {}).id || null;
      else if (name === "classify" || trainedFor(choices[0], TASK_PANELS[name].task)) id = ids[0] || null;
      else if (FOLLOWS_TOP.includes(name)) id = ids.includes(state.run) ? state.run : ids[0] || null;
      else id = null;
    }
    fillPanelPicker(name, choices, id);
    if (id !== panelRun[name]) { panelRun[name] = id; changed.push(name); }
  }
  if (changed.includes("denoise")) noiseOfRun();
  if (changed.includes("infill")) passesOfRun();
  showPanelUses();
  return changed;
}

function fillPanelPicker(name, choices, id) {
  const sel = $(name + "-run"), task = name.startsWith("classify") ? "classify" : TASK_PANELS[name].task;
  const texts = choices.map((r) => r.id + ": " + (task === "classify" ?
    `${r.architecture}, ${r.labels ?? "?"} labels, test accuracy ${percent(r.test_accuracy)}` :
    `${r.family} ${r.architecture}` + (trainedFor(r, task) ? ", trained for this" : ", never trained for this")));
  const key = JSON.stringify([choices.map((r) => r.id), texts]);
  if (sel.key !== key) {
    sel.key = key;
    sel.replaceChildren(...choices.map((r, i) => {
      const o = document.createElement("option"); o.value = r.id; o.textContent = texts[i]; return o;
    }));
    if (!choices.length) {
      const o = document.createElement("option"); o.value = ""; o.textContent = "none served"; sel.append(o);
    }
  }
  sel.value = id || "";
  sel.disabled = !choices.length;
}

// A job queued or running that trains a run for `task`.
function trainingFor(task) {
  return panelJobs.find((j) => (j.status === "queued" || j.status === "running") && (j.tasks || []).includes(task));
}

const runWords = (r) => `${r.id} (${r.family} ${r.architecture})`;

// Each task panel's line: the run it uses and whether it was trained for this; its offer to train one.
function showPanelUses() {
  for (const [name, P] of Object.entries(TASK_PANELS)) {
    const r = runById(panelRun[name]), none = !panelChoices(name).some((x) => trainedFor(x, P.task));
    let text;
    if (name === "classify") text = classifyWords();
    else if (trainedFor(r, P.task)) {
      text = `using ${runWords(r)}, trained for this` + (r.noise ? ` (with ${r.noise} noise)` : "") + ".";
    } else if (r) {
      text = `this model was never trained to ${P.verb}: ${runWords(r)} learned to rebuild clean images only, so ` +
        `its output here shows what such a model does, not what one trained for it would. ${P.missing}`;
    } else text = P.missing;
    const job = none ? trainingFor(P.task) : null;
    if (job) text += ` A ${P.preset} run is being trained now: job #${job.id}, ${job.status} (see Train).`;
    $(name + "-uses").textContent = text;
    $(name + "-offer").hidden = !none || Boolean(job);
  }
}

function classifyWords() {
  const pre = runById(panelRun.classify), rnd = runById(panelRun["classify-random"]);
  if (!pre && !rnd) return TASK_PANELS.classify.missing;
  const one = (r, how) => r ? `${r.id} (${how}, ${r.labels ?? "?"} labels, test accuracy ${percent(r.test_accuracy)})` :
    `no ${how} classifier`;
  const from = pre && pre.parent ? `fine-tuned from ${pre.parent}` : "fine-tuned";
  return `using ${one(pre, from)} beside ${one(rnd, "random start")}.`;
}

// The bottleneck, Blend and Latent panels use the run picked at the top, whatever it was trained for.
function showTopUses(r) {
  const text = `using ${runWords(r)}: the model picked at the top (any autoencoder shows this).`;
  for (const id of ["draw-uses", "blend-uses", "latent-uses"]) $(id).textContent = text;
}

// The path of a request of kind `kind` (newest()): on the run of the panel the kind belongs to.
function kindPath(kind, what) {
  const panel = SAMPLE_KINDS.includes(kind) ? "sample" : (kind in panelRun ? kind : null);
  return panel ? "runs/" + encodeURIComponent(panelRun[panel]) + "/" + what : runPath(what);
}

// The panels whose run changed, shown again.
async function refreshPanels(changed) {
  const work = [];
  if (changed.includes("denoise")) work.push(denoise());
  if (changed.includes("infill")) work.push(infill());
  if (changed.includes("sample")) work.push(showSamplePanel());
  if (changed.includes("classify") || changed.includes("classify-random")) classifyPanel().catch(() => {});
  await Promise.all(work);
}

// Denoise at the noise its new run was trained with, unless the user set the noise.
let noiseSet = false;  // the user moved the Denoise panel's noise controls: a new run keeps them
function noiseOfRun() {
  const r = runById(panelRun.denoise), [kind, level] = (r && r.noise ? r.noise : "").split(":");
  if (noiseSet || !["gaussian", "masking", "salt-pepper"].includes(kind) || !(Number(level) > 0)) return;
  $("noise-kind").value = kind;
  $("noise-level").value = String(Math.min(0.95, Number(level)));
}

let itersSet = false;  // the user moved the Infill panel's iterations: a new run keeps them
// The Infill panel's iterations start at the run's own default (`infill_passes` in GET /api/runs: one
// pass for a run trained on the centre hole, whose later passes drift from its first guess; else 20).
function passesOfRun() {
  const r = runById(panelRun.infill);
  if (itersSet || !r || !(r.infill_passes >= 1)) return;
  $("iters").value = String(r.infill_passes);
  $("iters-text").textContent = String(r.infill_passes);
}

async function showSamplePanel() {
  const r = runById(panelRun.sample);
  if (r) return showSampler(r);
  for (const k of SAMPLE_KINDS) tickets[k] = (tickets[k] || 0) + 1;  // an answer for the run before: dropped
  $("sample-body").hidden = true;
  $("sample-info").textContent = "";
}

// The Linear and Classify panels for the image on the pad. Each shows its own error in place of its
// pictures (newest()), not on the status line, which stays with the user's last action.
function sidePanels() {
  linearPanel().catch(() => {});
  classifyPanel().catch(() => {});
}

// --- linear vs non-linear -----------------------------------------------------------------------
async function linearPanel() {
  if (!state.image || !state.run) return;
  const r = await newest("linear", "pca", { image: state.image.data }, ["linear-pca", "linear-model"]);
  if (!r) return;
  drawImage($("linear-pca"), r.pca); drawImage($("linear-model"), r.model);
  $("linear-k").textContent = String(r.components);
  $("sse-pca").textContent = `squared error ${r.sse_pca.toFixed(2)}`;
  $("sse-model").textContent = `squared error ${r.sse_model.toFixed(2)}`;
  $("linear-uses").textContent = `using ${state.run} (picked at the top): its ${r.code_size}-number code beside ` +
    `PCA with ${r.components} components, fitted on ${r.fit_images.toLocaleString("en")} of its training images.`;
  const better = r.sse_model < r.sse_pca, [lo, hi] = better ? [r.sse_model, r.sse_pca] : [r.sse_pca, r.sse_model];
  $("linear-verdict").textContent = `On this image ${better ? "the model's" : "PCA's"} squared error (summed over ` +
    `its pixels) is ${hi > 0 ? (100 * (1 - lo / hi)).toFixed(0) : 0}% lower than ${better ? "PCA's" : "the model's"}` +
    (better ? ": the non-linear code kept more of it." : ": here the model does no better than the linear view.");
}

// --- classify -----------------------------------------------------------------------------------
// The pad's image classified by the fine-tuned classifier and by the one from a random start: ten
// labelled bars each (a <meter> per class, its label naming it), with each run's test accuracy.
async function classifyPanel() {
  const sides = [["classify", "probs-pre", "classify-pre-title", "fine-tuned encoder"],
    ["classify-random", "probs-random", "classify-random-title", "random start"]];
  await Promise.all(sides.map(async ([name, box, title, what]) => {
    const r = runById(panelRun[name]);
    $(title).textContent = r ? `${what}: ${r.id}, test accuracy ${percent(r.test_accuracy)}` : what;
    if (!r) {
      tickets[name] = (tickets[name] || 0) + 1;
      placeholder(box, `no ${what} classifier is served`, "idle");
      return;
    }
    if (!state.image) return;
    if (!takesPad(r)) {
      placeholder(box, `${r.id} takes images of shape ${JSON.stringify(r.input_shape)}, not the pad's`, "error");
      return;
    }
    const p = await newest(name, "classify", { image: state.image.data }, [box]);
    if (p) probBars($(box), p.probabilities, p.predicted);
  }));
}

function probBars(box, probs, predicted) {
  box.replaceChildren(...probs.map((p, k) => {
    const row = document.createElement("div"), label = document.createElement("label");
    const meter = document.createElement("meter"), pct = document.createElement("span");
    row.className = "prob" + (k === predicted ? " top" : "");
    meter.min = 0; meter.max = 1; meter.value = p;
    label.append(`${k} `, meter);
    pct.textContent = ` ${(100 * p).toFixed(1)}%` + (k === predicted ? " (most likely)" : "");
    row.append(label, pct);
    return row;
  }));
}

function wirePanels(guard) {
  for (const name of Object.keys(panelRun)) {
    $(name + "-run").addEventListener("change", guard(async (e) => {
      panelPicked[name] = true;
      panelRun[name] = e.target.value || null;
      const changed = [name];
      if (name === "classify" && !panelPicked["classify-random"]) {  // its partner follows it
        const partner = partnerOf(runById(panelRun.classify));
        panelRun["classify-random"] = partner ? partner.id : null;
        fillPanelPicker("classify-random", panelChoices("classify-random"), panelRun["classify-random"]);
      }
      if (name === "denoise") noiseOfRun();
      if (name === "infill") passesOfRun();
      showPanelUses();
      await refreshPanels(changed);
    }));
  }
  for (const [name, P] of Object.entries(TASK_PANELS)) {
    $(name + "-offer").addEventListener("click", guard(async () => {
      $(name + "-offer").hidden = true;
      await api("jobs", { preset: P.preset });
      await watchJobs();
    }));
  }
  for (const id of ["noise-kind", "noise-level"]) $(id).addEventListener("input", () => { noiseSet = true; });
  $("iters").addEventListener("input", () => { itersSet = true; });
}

// --- train ------------------------------------------------------------------------------
// About n round values covering [lo, hi] (a step of 1, 2 or 5 times a power of ten, at least minStep),
// and the decimals that write them.
function niceTicks(lo, hi, n, minStep = 0) {
  const raw = (hi - lo) / n || Math.abs(hi) / n || 1, mag = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(minStep, [1, 2, 5, 10].map((k) => k * mag).find((k) => k >= raw * (1 - 1e-9)));
  const first = Math.floor(lo / step + 1e-9), last = Math.ceil(hi / step - 1e-9), values = [];
  for (let k = first; k <= last; k++) values.push(k * step);
  return { values, digits: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

// The legend beside the chart says which; the colours are the style sheet's series colours.
const LOSS_LINES = [["train_loss", "--series-1"], ["val_loss", "--series-2"]];

// The losses per epoch on axes: epochs 1 to the job's last on x, the loss in its unit on y (round ticks
// that cover every value), train and validation in the two series colours; epoch `hi` (hovered) marked
// by a vertical line. What was drawn stays in state.loss for the hover readout and a change of scheme.
function drawLoss(metrics, epochs, unit, hi = -1) {
  const c = $("loss"), ctx = c.getContext("2d"), W = c.width, H = c.height;
  const box = { l: 56, r: W - 12, t: 10, b: H - 38 };
  ctx.clearRect(0, 0, W, H);
  const vals = metrics.flatMap((m) => [m.train_loss, m.val_loss]).filter((v) => typeof v === "number");
  const last = Math.max(2, epochs || 0, ...metrics.map((m) => m.epoch));
  const yt = vals.length ? niceTicks(Math.min(...vals), Math.max(...vals), 4) : niceTicks(0, 1, 4);
  const xt = niceTicks(1, last, 5, 1);
  const y0 = yt.values[0], y1 = yt.values[yt.values.length - 1];
  const X = (e) => box.l + (e - 1) / (last - 1) * (box.r - box.l);
  const Y = (v) => box.b - (v - y0) / (y1 - y0 || 1) * (box.b - box.t);
  state.loss = { metrics, epochs, unit, X };
  painted(c);
  axes(ctx, box, { ticks: { values: xt.values.filter((e) => e >= 1 && e <= last) }, X, label: "epoch" },
    { ticks: yt, Y, label: unit || "loss" });
  if (hi >= 1) { ctx.fillStyle = css("--chart-grid"); ctx.fillRect(X(hi), box.t, 1, box.b - box.t); }
  ctx.lineWidth = 1.5;
  for (const [key, name] of LOSS_LINES) {
    const colour = css(name);
    const pts = metrics.filter((m) => typeof m[key] === "number").map((m) => [X(m.epoch), Y(m[key])]);
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.beginPath();
    pts.forEach((p) => ctx.lineTo(...p));
    ctx.stroke();
    pts.forEach(([x, y]) => ctx.fillRect(x - 2, y - 2, 4, 4));
  }
  c.setAttribute("aria-label", `train and validation loss (${unit || "loss"}) per epoch, epochs 1 to ${last}, ` +
    `loss axis ${y0.toFixed(yt.digits)} to ${y1.toFixed(yt.digits)}`);
}

// One small canvas per image of a batch {shape: [n, ...image shape], data}.
function batchCanvases(batch) {
  const [n, ...shape] = batch.shape, size = shape.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, (_, i) => {
    const c = document.createElement("canvas");
    drawImage(c, { shape, data: batch.data.slice(i * size, (i + 1) * size) });
    return c;
  });
}

// Originals above reconstructions by the best weights so far.
function drawPreview(p) {
  $("job-preview").replaceChildren(...batchCanvases(p.originals), ...batchCanvases(p.recons));
}

// The job list; returns the jobs.
async function showJobs() {
  const { presets, jobs } = await api("jobs");
  panelJobs = jobs;  // the task panels say which run is being trained for them
  showPanelUses();
  const sel = $("preset");
  if (!sel.options.length) for (const p of presets) {
    const o = document.createElement("option"); o.value = p; o.textContent = p; sel.append(o);
  }
  const ul = $("jobs");
  ul.replaceChildren();
  for (const j of jobs.slice(-6)) {
    const li = document.createElement("li"), text = document.createElement("span");
    text.textContent = `#${j.id} ${j.preset}, ${j.epochs} epochs: ${j.status}` + (j.error ? " (" + j.error + ")" : "");
    li.append(text);
    if (j.status === "queued" || j.status === "running") {
      const b = document.createElement("button");
      b.type = "button"; b.textContent = "Cancel"; b.className = "cancel";
      b.addEventListener("click", () => api(`jobs/${j.id}/cancel`, {}).then(showJobs).catch((e) => setStatus(e.message, true)));
      li.append(b);
    }
    ul.append(li);
  }
  return jobs;
}

const lossText = (v) => (typeof v === "number" ? v.toPrecision(4) : "\u2013");

// Hovering the loss chart: the epoch nearest the pointer, both its losses in words, and a line there.
function lossHover(e) {
  const L = state.loss;
  if (!L || !L.metrics.length) return;
  const c = $("loss"), b = c.getBoundingClientRect(), x = (e.clientX - b.left) * c.width / b.width;
  const m = L.metrics.reduce((best, m) => (Math.abs(L.X(m.epoch) - x) < Math.abs(L.X(best.epoch) - x) ? m : best));
  $("loss-readout").textContent = `epoch ${m.epoch}: train ${lossText(m.train_loss)}, ` +
    `validation ${lossText(m.val_loss)}` + (L.unit ? ` (${L.unit})` : "");
  drawLoss(L.metrics, L.epochs, L.unit, m.epoch);
}

// The charts again in the other colour scheme's colours, when the system's scheme changes.
function redrawCharts() {
  if ($("code").chart) drawBars($("code"), $("code").chart.values, -1, $("code").chart.names);
  if (state.latent) drawLatent();
  if (state.loss) drawLoss(state.loss.metrics, state.loss.epochs, state.loss.unit);
}

// One event of a job: the chart, the reconstructions so far and the status line with both losses.
function showJobEvent(ev) {
  drawLoss(ev.metrics, ev.epochs, ev.loss_unit);
  if (ev.preview) drawPreview(ev.preview);
  const ep = ev.metrics.length ? ev.metrics[ev.metrics.length - 1] : null;
  $("job-status").textContent = `job #${ev.id}: ${ev.status}` + (ep ? `, epoch ${ep.epoch}/${ev.epochs}, ` +
    `train ${lossText(ep.train_loss)}, validation ${lossText(ep.val_loss)}` +
    (ev.loss_unit ? ` (${ev.loss_unit})` : "") : "");
}

// Server-sent events read with fetch (EventSource cannot send the token header), until the job ends.
async function follow(id) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch(`/api/jobs/${id}/events`, { headers });
  if (!r.ok) throw new Error("could not follow job " + id);
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = "", last = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, k); buf = buf.slice(k + 2);
      if (!line.startsWith("data: ")) continue;
      last = JSON.parse(line.slice(6));
      showJobEvent(last);
      showJobs().catch(() => {});  // the list only: the stream goes on
    }
  }
  if (last && last.status === "done") await loadRuns();  // the new run joins the picker; the run shown stays
}

// The server's jobs, followed one after another while any is queued or running (one trains at a time).
// The page asks at load and every few seconds, so a reloaded page, or another tab, follows the job the
// server is running instead of showing the list it had. One follower at a time: a call while it looks
// (a job just submitted) makes it look once more before it stops.
let watching = false, lookAgain = false;

async function watchJobs() {
  if (watching) { lookAgain = true; return; }
  watching = true;
  try {
    for (;;) {
      lookAgain = false;
      const jobs = await showJobs();
      const next = jobs.find((j) => j.status === "running") || jobs.find((j) => j.status === "queued");
      if (next) await follow(next.id);
      else if (!lookAgain) break;
    }
  } finally {
    watching = false;
  }
}

async function startJob() {
  await api("jobs", { preset: $("preset").value, epochs: Number($("epochs").value) || 5 });
  await watchJobs();
}

// Runs and jobs change without this page (`aekit train` beside the server, another tab): looked at
// again every few seconds while the page is shown, and at once when it gets the focus back. A failure
// here says nothing: the status line keeps what the user's own last action gave.
const REFRESH_MS = 3000;

let listing = null;  // the run list being fetched: a slow server gets one request at a time, never a pile
function refresh() {
  if (document.hidden) return;
  if (!listing) listing = loadRuns().catch(() => {}).finally(() => { listing = null; });
  watchJobs().catch(() => {});
}

function wire() {
  const guard = (fn) => async (...a) => { try { await fn(...a); } catch (e) { setStatus(e.message, true); } };
  $("run").addEventListener("change", guard((e) => chooseRun(e.target.value)));
  $("clear").addEventListener("click", () => { clearPad(); newImage(padImage()); update(); });
  $("pick").addEventListener("click", guard(() => pickTest(Number($("pick-index").value) || 0)));
  $("upload").addEventListener("change", guard((e) => e.target.files[0] && upload(e.target.files[0])));
  for (const id of ["noise-kind", "noise-level"]) $(id).addEventListener("input", runDenoise);
  $("mask-kind").addEventListener("input", maskKindChanged);
  $("iters").addEventListener("input", runInfill);
  $("clear-mask").addEventListener("click", () => { clearMask(); runInfill(); });
  for (const id of ["blend-a", "blend-b", "blend-t"]) $(id).addEventListener("input", runBlend);
  $("train").addEventListener("click", guard(startJob));
  for (const id of ["sample-n", "sample-t"]) $(id).addEventListener("input", runSamples);
  $("sample-new").addEventListener("click", () => { state.seed = (state.seed + 1) % 2147483647; runSamples(); });
  $("sample-label").addEventListener("input", runLabel);
  $("traverse-dim").addEventListener("input", runTraverse);
  $("manifold").addEventListener("click", guard(decodeManifoldPoint));
  $("manifold").addEventListener("keydown", guard(manifoldKey));
  strokes(); painting(); latentEvents(); wirePanels(guard);
  $("code").addEventListener("pointermove", (e) => barHover($("code"), "code-readout", e));
  $("loss").addEventListener("pointermove", lossHover);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawCharts);
  if (token) $("api-docs").hash = "token=" + encodeURIComponent(token); // its Try it out sends it too
}

placeholders();
clearPad();
wire();
loadRuns().then(watchJobs).catch((e) => setStatus(e.message, true));
setInterval(refresh, REFRESH_MS);
window.addEventListener("focus", refresh);
document.addEventListener("visibilitychange", refresh);
