// aekit serve: the page. Plain JS, no build step, no external request. Data from the server is
// only ever written with textContent or drawn on canvases, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.hash.slice(1)).get("token");
const state = { run: null, shape: [1, 28, 28], image: null, latent: null, paint: null };

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
async function loadRuns(keep) {
  const runs = await api("runs");
  const sel = $("run");
  sel.replaceChildren();
  for (const r of runs) {
    const o = document.createElement("option");
    o.value = r.id;
    const sse = typeof r.sse_per_image === "number" ? r.sse_per_image.toFixed(2) : "?";
    o.textContent = r.error ? r.id + " (unreadable)" : `${r.id}: ${r.family} ${JSON.stringify(r.layers || [])} ` +
      `code ${r.code}, ${r.dataset}, test sse/image ${sse}`;
    o.disabled = Boolean(r.error);
    sel.append(o);
  }
  sel.runs = runs;
  if (keep && runs.some((r) => r.id === keep)) sel.value = keep;
  if (runs.length) await chooseRun(sel.value);
  else setStatus("no runs to show", true);
}

async function chooseRun(id) {
  const r = $("run").runs.find((x) => x.id === id);
  state.run = id;
  state.shape = r.input_shape || [1, 28, 28];
  $("run-info").textContent = `${r.family}, layers ${JSON.stringify(r.layers || [])}, code ${r.code}, ` +
    `data ${r.dataset}`;
  setStatus("opening " + id + " ...");
  await pickTest(Number($("pick-index").value) || 0);
  await Promise.all([loadLatent(), blend()]);
  setStatus("");
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

async function pickTest(index) {
  const r = await api(runPath("samples") + `?start=${index}&n=1`);
  if (!r.images.length) throw new Error("no test image " + index);
  state.image = r.images[0];
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
  const r = await api(runPath("reconstruct"), { image: b64 });
  state.image = r.input;
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
  if (kind === "paint" && !state.paint.some((v) => v)) {
    drawImage($("masked"), state.image);
    $("psnr-fill").textContent = "paint a hole"; $("psnr-mean").textContent = "";
    return;
  }
  const mask = kind === "paint" ? state.paint : kind;
  const r = await api(runPath("inpaint"), { image: state.image.data, mask, iters });
  drawImage($("masked"), r.masked); drawImage($("filled"), r.model); drawImage($("meanfill"), r.mean_fill);
  $("psnr-fill").textContent = dB(r.psnr_model);
  $("psnr-mean").textContent = dB(r.psnr_mean);
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
  state.latent = { ...L, px: L.points.map(toPx), fromPx };
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  state.latent.px.forEach((p, i) => {
    ctx.fillStyle = L.labels ? PALETTE[L.labels[i] % 10] : "#3465a4";
    ctx.fillRect(p[0] - 2, p[1] - 2, 4, 4);
  });
  $("latent-info").textContent = (L.method === "code" ? "the code itself" : `PCA of ${L.code_size}-number codes`) +
    `, ${L.points.length} test images` + (L.code_size === 2 ? "; click empty space to decode it" : "");
}

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
    try {
      const r = await api(runPath("latent/decode"), { x: zx, y: zy });
      drawImage($("hover-img"), r.image); drawImage($("hover-recon"), r.image);
      $("hover-label").textContent = `decoded (${zx.toFixed(2)}, ${zy.toFixed(2)})`;
    } catch (err) { setStatus(err.message, true); }
  });
}

// --- train ------------------------------------------------------------------------------
function drawLoss(metrics) {
  const c = $("loss"), ctx = c.getContext("2d"), W = c.width, H = c.height;
  ctx.clearRect(0, 0, W, H);
  const vals = metrics.flatMap((m) => [m.train_loss, m.val_loss]).filter((v) => typeof v === "number");
  if (!vals.length) return;
  const lo = Math.min(...vals), hi = Math.max(...vals), n = Math.max(2, metrics.length);
  const px = (i, v) => [8 + i / (n - 1) * (W - 16), H - 8 - (v - lo) / (hi - lo || 1) * (H - 16)];
  for (const [key, colour] of [["train_loss", "#3465a4"], ["val_loss", "#cc0000"]]) {
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.beginPath();
    metrics.forEach((m, i) => { if (typeof m[key] === "number") ctx.lineTo(...px(i, m[key])); });
    ctx.stroke();
    metrics.forEach((m, i) => { if (typeof m[key] === "number") { const [x, y] = px(i, m[key]); ctx.fillRect(x - 2, y - 2, 4, 4); } });
  }
}

// Originals above reconstructions by the best weights so far, one small canvas per image.
function drawPreview(p) {
  const box = $("job-preview"), [n, ...shape] = p.originals.shape, size = shape.reduce((a, b) => a * b, 1);
  box.replaceChildren();
  for (const batch of [p.originals, p.recons]) for (let i = 0; i < n; i++) {
    const c = document.createElement("canvas");
    drawImage(c, { shape, data: batch.data.slice(i * size, (i + 1) * size) });
    box.append(c);
  }
}

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
}

// Server-sent events read with fetch (EventSource cannot send the token header).
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
      drawLoss(last.metrics);
      if (last.preview) drawPreview(last.preview);
      const ep = last.metrics.length ? last.metrics[last.metrics.length - 1] : null;
      $("job-status").textContent = `job #${last.id}: ${last.status}` +
        (ep ? `, epoch ${ep.epoch}/${last.epochs}, train ${ep.train_loss.toFixed(4)}` : "");
      showJobs();
    }
  }
  if (last && last.status === "done") {
    await loadRuns(state.run);  // the new run joins the picker; the one shown stays
  }
}

async function startJob() {
  const job = await api("jobs", { preset: $("preset").value, epochs: Number($("epochs").value) || 5 });
  await showJobs();
  await follow(job.id);
}

function wire() {
  const guard = (fn) => async (...a) => { try { await fn(...a); } catch (e) { setStatus(e.message, true); } };
  $("run").addEventListener("change", guard((e) => chooseRun(e.target.value)));
  $("clear").addEventListener("click", () => { clearPad(); state.image = padImage(); update(); });
  $("pick").addEventListener("click", guard(() => pickTest(Number($("pick-index").value) || 0)));
  $("upload").addEventListener("change", guard((e) => e.target.files[0] && upload(e.target.files[0])));
  for (const id of ["noise-kind", "noise-level"]) $(id).addEventListener("input", runDenoise);
  for (const id of ["mask-kind", "iters"]) $(id).addEventListener("input", runInfill);
  for (const id of ["blend-a", "blend-b", "blend-t"]) $(id).addEventListener("input", runBlend);
  $("train").addEventListener("click", guard(startJob));
  strokes(); painting(); latentEvents();
  if (token) $("api-docs").hash = "token=" + encodeURIComponent(token); // its Try it out sends it too
}

clearPad();
wire();
loadRuns().then(showJobs).catch((e) => setStatus(e.message, true));
