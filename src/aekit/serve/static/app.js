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
}

function drawBars(canvas, code) {
  const ctx = canvas.getContext("2d"), W = canvas.width, H = canvas.height;
  ctx.clearRect(0, 0, W, H);
  const m = Math.max(1e-6, ...code.map(Math.abs)), bw = W / code.length;
  ctx.fillStyle = "#999"; ctx.fillRect(0, H / 2, W, 1);
  code.forEach((v, i) => {
    ctx.fillStyle = v >= 0 ? "#3465a4" : "#cc0000";
    const bh = (Math.abs(v) / m) * (H / 2 - 2);
    ctx.fillRect(i * bw + 1, v >= 0 ? H / 2 - bh : H / 2, Math.max(1, bw - 2), bh);
  });
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

function showRunInfo(r) { $("run-info").textContent = `${r.family} ${r.architecture}, data ${r.dataset}`; }

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
  if (shown || state.opening) return;  // the run shown, or the one being opened, stays chosen
  for (const r of runs.filter((x) => x.usable)) if (await chooseRun(r.id)) return;  // the first that opens
  if (!runs.some((r) => r.usable)) { state.run = null; setStatus("no autoencoder run to show", true); }
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
  const sampling = showSampler(r).then(() => null, (e) => e);  // its error is shown once the others are done
  // A conditional VAE encodes and reconstructs only with each image's label: the panels above have none
  // (and without an image, a reconstruction or denoising still queued for the run before is not sent).
  if (r.conditional) state.image = null;
  else {
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

async function reconstruct() {
  if (!state.image) return;
  const r = await api(runPath("reconstruct"), { image: state.image.data });
  drawImage($("input"), r.input); drawImage($("recon"), r.recon); drawImage($("errmap"), r.error_map, true);
  drawBars($("code"), r.code.data);
  $("score").textContent = `anomaly score ${r.score.toFixed(2)} vs threshold ${r.threshold.toFixed(2)}: ` +
    (r.anomaly ? "anomalous" : "normal");
  $("score").classList.toggle("bad", r.anomaly);
}

const update = throttled(async () => { await reconstruct(); await Promise.all([denoise(), infill()]); }, 150);
const liveRecon = throttled(reconstruct, 120);

// A new image on the pad (a test image, an upload, a cleared pad): a hole painted for the last one
// and the words about an upload belong to that image, not this one.
function newImage(img, note) {
  state.image = img;
  clearMask();
  $("input-note").textContent = note || "";
}

async function pickTest(index) {
  const r = await api(runPath("samples") + `?start=${index}&n=1`);
  if (!r.images.length) throw new Error("no test image " + index);
  newImage(r.images[0]);
  showOnPad(state.image);
  await update();
}

function strokes() {
  let down = false, last = null;
  const at = (e) => {
    const b = pad.getBoundingClientRect();
    return [(e.clientX - b.left) * pad.width / b.width, (e.clientY - b.top) * pad.height / b.height];
  };
  pad.addEventListener("pointerdown", (e) => { down = true; last = at(e); pad.setPointerCapture(e.pointerId); });
  pad.addEventListener("pointermove", (e) => {
    if (!down) return;
    const p = at(e);
    padCtx.strokeStyle = "#fff"; padCtx.lineWidth = pad.width / 12; padCtx.lineCap = "round";
    padCtx.beginPath(); padCtx.moveTo(...last); padCtx.lineTo(...p); padCtx.stroke();
    last = p;
    state.image = padImage();
    liveRecon();
  });
  const end = () => { if (down) { down = false; state.image = padImage(); update(); } };
  pad.addEventListener("pointerup", end);
  pad.addEventListener("pointercancel", end);
}

async function upload(file) {
  const b64 = await new Promise((ok, fail) => {
    const rd = new FileReader();
    rd.onload = () => ok(rd.result); rd.onerror = () => fail(new Error("could not read the file"));
    rd.readAsDataURL(file);
  });
  // The server makes the picture the model's input (grey, scaled and padded keeping its aspect ratio,
  // inverted to the training images' polarity) and says what it did: that input is what the pad shows.
  const r = await api(runPath("reconstruct"), { image: b64 });
  const done = r.preprocessing || [];
  newImage(r.input, "model input: " + (done.length ? done.join("; ") : "the picture as it is"));
  showOnPad(state.image);
  await update();
}

// --- denoise, infill, blend ----------------------------------------------------------------
// A PSNR is null where the image equals the original exactly (no error: infinite dB).
function dB(v) { return v === null ? "exact (\u221e dB)" : v.toFixed(2) + " dB"; }

async function denoise() {
  if (!state.image) return;
  const level = Number($("noise-level").value);
  $("noise-level-text").textContent = level.toFixed(2);
  const r = await api(runPath("denoise"), { image: state.image.data, noise: $("noise-kind").value, level });
  drawImage($("noisy"), r.noisy); drawImage($("denoised"), r.model); drawImage($("baseline"), r.baseline);
  $("psnr-noisy").textContent = dB(r.psnr_noisy);
  $("psnr-model").textContent = dB(r.psnr_model);
  $("psnr-base").textContent = dB(r.psnr_baseline);
  $("base-name").textContent = r.baseline_name.replace(/_/g, " ");
}

async function infill() {
  if (!state.image || state.shape.length !== 3) return;
  const iters = Number($("iters").value), kind = $("mask-kind").value;
  $("iters-text").textContent = String(iters);
  const [, h, w] = state.shape;
  if (kind === "paint" && (!state.paint || state.paint.length !== h * w)) state.paint = new Array(h * w).fill(0);
  if (kind === "paint" && !state.paint.some((v) => v)) {  // nothing to fill yet: no fill shown either
    drawImage($("masked"), state.image);
    for (const id of ["filled", "meanfill"]) $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height);
    $("psnr-fill").textContent = "paint a hole"; $("psnr-mean").textContent = "";
    return;
  }
  const mask = kind === "paint" ? state.paint : kind;
  const r = await api(runPath("inpaint"), { image: state.image.data, mask, iters });
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
  const paintAt = (e) => {
    const b = c.getBoundingClientRect(), [, h, w] = state.shape;
    const x = Math.floor((e.clientX - b.left) * w / b.width), y = Math.floor((e.clientY - b.top) * h / b.height);
    for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) {
      const yy = y + dy, xx = x + dx;
      if (yy >= 0 && yy < h && xx >= 0 && xx < w) state.paint[yy * w + xx] = 1;
    }
    const ctx = c.getContext("2d");
    ctx.fillStyle = "#888"; ctx.fillRect(x - 1, y - 1, 3, 3);
  };
  c.addEventListener("pointerdown", (e) => {
    $("mask-kind").value = "paint";
    const [, h, w] = state.shape;
    if (!state.paint || state.paint.length !== h * w) state.paint = new Array(h * w).fill(0);
    down = true; c.setPointerCapture(e.pointerId); paintAt(e);
  });
  c.addEventListener("pointermove", (e) => { if (down) paintAt(e); });
  c.addEventListener("pointerup", () => { down = false; runInfill(); });
}

const runDenoise = throttled(denoise, 100), runInfill = throttled(infill, 100);

async function blend() {
  const r = await api(runPath("interpolate"), { a_index: Number($("blend-a").value) || 0,
    b_index: Number($("blend-b").value) || 0, t: Number($("blend-t").value) });
  drawImage($("blend-decoded"), r.decoded); drawImage($("blend-fade"), r.fade);
}
const runBlend = throttled(blend, 80);

// --- latent map ---------------------------------------------------------------------------
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#17becf"];

async function loadLatent() {
  const L = await api(runPath("latent"));
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
  for (const id of ["hover-img", "hover-recon"]) $(id).getContext("2d").clearRect(0, 0, $(id).width, $(id).height);
  $("hover-label").textContent = "hover a point";
  showHover(false);
  $("latent-info").textContent = (L.method === "code" ? "the code itself" : `PCA of ${L.code_size}-number codes`) +
    `, ${L.points.length} test images` + (L.code_size === 2 ? "; click empty space to decode it" : "");
}

// The points in their label's colour, and a ring and cross where the map was last clicked.
function drawLatent() {
  const L = state.latent, c = $("latent"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  L.px.forEach((p, i) => {
    ctx.fillStyle = L.labels ? PALETTE[L.labels[i] % 10] : "#3465a4";
    ctx.fillRect(p[0] - 2, p[1] - 2, 4, 4);
  });
  if (!L.mark) return;
  const [x, y] = L.mark;
  ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
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

let hoverIndex = -1;
const hover = throttled(async () => {
  if (hoverIndex < 0) return;
  const r = await api(runPath("reconstruct"), { index: hoverIndex });
  drawImage($("hover-img"), r.input); drawImage($("hover-recon"), r.recon);
  showHover(true);
  const lab = state.latent.labels ? ", label " + state.latent.labels[hoverIndex] : "";
  $("hover-label").textContent = "test image " + hoverIndex + lab;
}, 60);

function latentEvents() {
  $("latent").addEventListener("pointermove", (e) => {
    if (!state.latent) return;
    const [i, d] = nearest(...mapPoint(e));
    if (d < 8 && i !== hoverIndex) { hoverIndex = i; hover(); }
  });
  $("latent").addEventListener("click", async (e) => {
    if (!state.latent || state.latent.code_size !== 2) return;
    const [x, y] = mapPoint(e), [, d] = nearest(x, y);
    if (d < 8) return;
    const [zx, zy] = state.latent.fromPx(x, y);
    state.latent.mark = [x, y];
    hoverIndex = -1;  // hovering the point shown before shows it again
    drawLatent();
    try {
      const r = await api(runPath("latent/decode"), { x: zx, y: zy });
      drawImage($("hover-img"), r.image);
      showHover(false);  // a decoded point has no reconstruction: shown once
      $("hover-label").textContent = `decoded (${zx.toFixed(2)}, ${zy.toFixed(2)})`;
    } catch (err) { setStatus(err.message, true); }
  });
}

// --- sample (variational runs) -------------------------------------------------------------
// Latest-wins per kind of request: an answer that comes back after a newer request of its kind was
// made (the slider moved on, another run was chosen) is dropped, so the panel shows the newest only.
const tickets = { sample: 0, traverse: 0, manifold: 0, point: 0 };

async function newest(kind, what, body) {
  const ticket = ++tickets[kind];
  try {
    const r = await api(runPath(what), body);
    return ticket === tickets[kind] ? r : null;
  } catch (e) {
    if (ticket === tickets[kind]) throw e;
    return null;  // an error about an older setting is as stale as its answer
  }
}

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
  const r = await newest("sample", "sample", { n, temperature, seed: state.seed, label: sampleLabel() });
  if (r) $("sample-grid").replaceChildren(...batchCanvases(r.images));
}

async function traverseDim() {
  const d = Number($("traverse-dim").value);
  const r = await newest("traverse", "traverse", { dims: [d], steps: 9, span: 3, label: sampleLabel() });
  if (r) $("traverse-strip").replaceChildren(...batchCanvases({ shape: r.strips.shape.slice(1), data: r.strips.data }));
}

// The decoded grid of a 2-number code on one canvas; its codes map a click to the point under it.
async function loadManifold() {
  const label = sampleLabel();
  const r = await newest("manifold", "manifold", { grid: 12, label });
  if (!r) return;
  const [g, , ...shape] = r.images.shape, c = $("manifold");
  const tiles = batchCanvases({ shape: [g * g, ...shape], data: r.images.data });
  c.width = g * tiles[0].width; c.height = g * tiles[0].height;
  const ctx = c.getContext("2d");
  tiles.forEach((t, k) => ctx.drawImage(t, (k % g) * t.width, Math.floor(k / g) * t.height));
  state.manifold = { codes: r.codes, label };
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
  const r = await newest("point", "latent/decode", { x: z0, y: z1, label: M.label });
  if (!r) return;
  drawImage($("manifold-img"), r.image);
  $("manifold-label").textContent = `decoded z = (${z0.toFixed(2)}, ${z1.toFixed(2)})`;
}

// The panel for the run chosen: its controls for a VAE run, else one line saying why there are none.
async function showSampler(r) {
  for (const k of Object.keys(tickets)) tickets[k]++;  // late answers about the run shown before are dropped
  state.manifold = null;
  for (const id of ["sample-grid", "traverse-strip"]) $(id).replaceChildren();
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
  $("manifold-label").textContent = "click the manifold";
  await Promise.all([samples(), traverseDim(), r.code === 2 ? loadManifold() : null]);
}

const runSamples = throttled(samples, 80), runTraverse = throttled(traverseDim, 80);
const runLabel = throttled(() => Promise.all([samples(), traverseDim(),
  $("manifold-box").hidden ? null : loadManifold()]), 80);

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

const LOSS_LINES = [["train_loss", "#3465a4"], ["val_loss", "#cc0000"]];  // the legend beside the chart says which

// The losses per epoch on axes: epochs 1 to the job's last on x, the loss in its unit on y (round ticks
// that cover every value), train in blue and validation in red.
function drawLoss(metrics, epochs, unit) {
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
  ctx.strokeStyle = "#888"; ctx.fillStyle = "#444"; ctx.lineWidth = 1; ctx.font = "10px system-ui, sans-serif";
  ctx.beginPath(); ctx.moveTo(box.l, box.t); ctx.lineTo(box.l, box.b); ctx.lineTo(box.r, box.b); ctx.stroke();
  ctx.textAlign = "right"; ctx.textBaseline = "middle";
  for (const v of yt.values) { ctx.fillRect(box.l - 4, Y(v), 4, 1); ctx.fillText(v.toFixed(yt.digits), box.l - 6, Y(v)); }
  ctx.textAlign = "center"; ctx.textBaseline = "top";
  for (const e of xt.values.filter((e) => e >= 1 && e <= last)) {
    ctx.fillRect(X(e), box.b, 1, 4); ctx.fillText(String(e), X(e), box.b + 6);
  }
  ctx.fillText("epoch", (box.l + box.r) / 2, box.b + 22);
  ctx.save(); ctx.translate(10, (box.t + box.b) / 2); ctx.rotate(-Math.PI / 2); ctx.textBaseline = "middle";
  ctx.fillText(unit || "loss", 0, 0); ctx.restore();
  ctx.lineWidth = 1.5;
  for (const [key, colour] of LOSS_LINES) {
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
  strokes(); painting(); latentEvents();
  if (token) $("api-docs").hash = "token=" + encodeURIComponent(token); // its Try it out sends it too
}

clearPad();
wire();
loadRuns().then(watchJobs).catch((e) => setStatus(e.message, true));
setInterval(refresh, REFRESH_MS);
window.addEventListener("focus", refresh);
document.addEventListener("visibilitychange", refresh);
