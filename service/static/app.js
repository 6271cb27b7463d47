// The Mochi web page: sign in with an API key, submit jobs, follow them, play and download
// the videos. Talks only to this origin's /v1 API; the key lives in sessionStorage.
"use strict";

const KEY_STORAGE = "mochi.apiKey";
const PAGE_SIZE = 10;
const ACTIVE_POLL_MS = 400; // a step shows within a second
const IDLE_POLL_MS = 5000; // picks up jobs submitted elsewhere
const ACTIVE = new Set(["queued", "starting", "running"]);
const FIELDS = [
  "prompt", "negative_prompt", "num_frames", "height", "width",
  "num_inference_steps", "guidance_scale", "seed",
];

const state = {
  key: null,
  limits: null,
  offset: 0,
  nextOffset: null,
  pollTimer: null,
  watched: new Set(), // jobs submitted from this tab: their video loads when done
  items: new Map(), // job id -> {element, job, videoUrl}
};

const $ = (id) => document.getElementById(id);

class ApiFailure extends Error {
  constructor(status, body, retryAfter) {
    super(describeFailure(status, body, retryAfter));
    this.status = status;
    this.body = body || {};
    this.retryAfter = retryAfter;
  }
}

function describeFailure(status, body, retryAfter) {
  if (status === 0) return "The API cannot be reached; retrying.";
  let text = (body && body.error) || `HTTP ${status}`;
  if (body && body.estimate_gib !== undefined) {
    text += ` (needs about ${body.estimate_gib} GiB; a worker has ${body.worker_memory_gib} GiB)`;
  }
  if (retryAfter) text += ` Retry in ${retryAfter} s.`;
  return text;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiFailure(0, { error: String(error) }, null);
  }
  const retryAfter = response.headers.get("Retry-After");
  if (!response.ok) {
    let data = {};
    try { data = await response.json(); } catch (error) { data = { error: response.statusText }; }
    throw new ApiFailure(response.status, data, retryAfter);
  }
  return response;
}

// ---- sign in / out --------------------------------------------------------------------------

async function signIn(key, quiet) {
  state.key = key;
  try {
    await api("GET", "/v1/jobs?limit=1");
  } catch (failure) {
    state.key = null;
    if (!quiet) {
      const message = failure.status === 401
        ? "This API key was refused. Check it and try again."
        : failure.message;
      setError("api-key", message);
      $("api-key").focus();
    }
    return false;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  setError("api-key", "");
  $("sign-in").hidden = true;
  $("workspace").hidden = false;
  $("account").hidden = false;
  $("signed-in-as").textContent = `Signed in with key …${key.slice(-4)}`;
  await loadLimits();
  await refresh();
  return true;
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  state.key = null;
  clearTimeout(state.pollTimer);
  for (const id of [...state.items.keys()]) removeItem(id);
  $("workspace").hidden = true;
  $("account").hidden = true;
  $("sign-in").hidden = false;
  $("api-key").value = "";
  setError("api-key", message || "");
  $("api-key").focus();
}

// ---- the form -------------------------------------------------------------------------------

async function loadLimits() {
  if (state.limits) return;
  const response = await fetch("parameters.json");
  state.limits = (await response.json()).parameters;
  for (const name of FIELDS) {
    const limit = state.limits[name];
    const input = $(`field-${name}`);
    if (!limit || !input) continue;
    $(`hint-${name}`).textContent = limit.hint;
    if (limit.maxLength !== undefined) input.maxLength = limit.maxLength;
    if (input.type === "number") {
      if (limit.minimum !== undefined) input.min = limit.minimum;
      if (limit.maximum !== undefined) input.max = limit.maximum;
      if (limit.step !== undefined) input.step = limit.step;
    }
    // The limits may arrive after the user has typed: a default never replaces their value.
    const hasDefault = limit.default !== null && limit.default !== undefined;
    if (hasDefault && input.value === "") input.value = limit.default;
  }
}

function setError(name, message) {
  const slot = $(name === "api-key" ? "api-key-error" : `error-${name}`);
  const input = $(name === "api-key" ? "api-key" : `field-${name}`);
  slot.textContent = message;
  if (input) {
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
}

function clearFormErrors() {
  for (const name of FIELDS) setError(name, "");
  $("form-error").textContent = "";
}

function formValues() {
  const values = {};
  for (const name of FIELDS) {
    const raw = $(`field-${name}`).value;
    const type = state.limits && state.limits[name] ? state.limits[name].type : "string";
    if (type === "string") {
      if (name === "prompt" || raw !== "") values[name] = raw;
    } else if (raw.trim() !== "") {
      values[name] = toNumber(raw.trim(), type);
    }
  }
  return values;
}

function toNumber(text, type) {
  // The API judges the value; a seed beyond 2^53 goes as its exact digits.
  const number = Number(text);
  if (type === "integer" && /^-?\d+$/.test(text) && !Number.isSafeInteger(number)) return text;
  return Number.isFinite(number) ? number : text;
}

async function submitJob(event) {
  event.preventDefault();
  clearFormErrors();
  const button = $("submit-job");
  button.disabled = true;
  try {
    const response = await api("POST", "/v1/jobs", formValues());
    const job = await response.json();
    state.watched.add(job.id);
    state.offset = 0;
    announce("");
    await refresh();
  } catch (failure) {
    showSubmitFailure(failure);
  } finally {
    button.disabled = false;
  }
}

function showSubmitFailure(failure) {
  if (failure.status === 401) {
    signOut("Your API key was refused (401); sign in again.");
    return;
  }
  const fields = failure.body.fields || [];
  let first = null;
  for (const problem of fields) {
    if (FIELDS.includes(problem.field)) {
      setError(problem.field, problem.message);
      first = first || problem.field;
    } else {
      $("form-error").textContent += `${problem.field}: ${problem.message} `;
    }
  }
  if (!fields.length || !first) {
    const prefix = failure.status === 422 ? "Refused: " : "";
    $("form-error").textContent = prefix + failure.message;
  }
  if (first) $(`field-${first}`).focus();
}

// ---- the job list ---------------------------------------------------------------------------

async function refresh() {
  clearTimeout(state.pollTimer);
  if (!state.key) return;
  let delay = IDLE_POLL_MS;
  try {
    const response = await api("GET", `/v1/jobs?limit=${PAGE_SIZE}&offset=${state.offset}`);
    const page = await response.json();
    renderPage(page);
    announce("");
    if (page.jobs.some((job) => ACTIVE.has(job.status))) delay = ACTIVE_POLL_MS;
  } catch (failure) {
    if (failure.status === 401) {
      signOut("Your API key was refused (401); sign in again.");
      return;
    }
    announce(failure.message);
    delay = failure.retryAfter ? Number(failure.retryAfter) * 1000 : 2000;
  }
  if (state.key) state.pollTimer = setTimeout(refresh, delay);
}

function announce(message) {
  $("banner").textContent = message;
  $("banner").hidden = !message;
}

function renderPage(page) {
  state.nextOffset = page.next_offset;
  const ids = page.jobs.map((job) => job.id);
  for (const id of [...state.items.keys()]) if (!ids.includes(id)) removeItem(id);
  for (const job of page.jobs) updateItem(job);
  const list = $("jobs");
  const shown = [...list.children].map((element) => element.dataset.jobId);
  // Moving a node pauses its video: reorder only when the order changed.
  if (shown.join() !== ids.join()) {
    for (const id of ids) list.appendChild(state.items.get(id).element);
  }
  const first = page.total ? state.offset + 1 : 0;
  $("jobs-summary").textContent = page.total
    ? `Jobs ${first}–${state.offset + page.jobs.length} of ${page.total}, newest first.`
    : "No jobs yet: describe a video above and press Generate.";
  $("newer").disabled = state.offset === 0;
  $("older").disabled = page.next_offset === null;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function createItem(job) {
  const li = element("li", "job");
  li.dataset.jobId = job.id;
  const head = element("div", "job-head");
  head.append(element("span", "job-prompt", job.parameters.prompt),
    element("span", "job-status"));
  const p = job.parameters;
  const meta = element("p", "job-meta",
    `${job.id} · ${p.num_frames} frames · ${p.width}×${p.height} · ${p.num_inference_steps} steps`);
  const progressRow = element("div", "job-progress");
  const progress = element("progress");
  progress.id = `progress-${job.id}`;
  const progressLabel = element("label", "progress-text");
  progressLabel.htmlFor = progress.id;
  progressRow.append(progress, progressLabel);
  const error = element("p", "job-error");
  const actions = element("div", "job-actions");
  const cancel = element("button", "cancel", "Cancel");
  cancel.type = "button";
  cancel.setAttribute("aria-label", `Cancel job ${job.id}`);
  cancel.addEventListener("click", () => cancelJob(job.id));
  const show = element("button", "show-video", "Show video");
  show.type = "button";
  show.setAttribute("aria-label", `Show the video of job ${job.id}`);
  show.addEventListener("click", () => loadVideo(job.id));
  const download = element("a", "download", "Download MP4");
  download.download = `${job.id}.mp4`;
  download.hidden = true;
  actions.append(cancel, show, download);
  const video = element("video");
  video.controls = true;
  video.muted = true;
  video.playsInline = true;
  video.preload = "auto";
  video.hidden = true;
  video.setAttribute("aria-label", `Video of job ${job.id}: ${job.parameters.prompt}`);
  li.append(head, meta, progressRow, error, actions, video);
  return { element: li, job: null, videoUrl: null, loading: false, canceling: false };
}

function updateItem(job) {
  let item = state.items.get(job.id);
  if (!item) {
    item = createItem(job);
    state.items.set(job.id, item);
  }
  item.job = job;
  const li = item.element;
  li.dataset.status = job.status;
  li.querySelector(".job-status").textContent = job.status;
  const { step, total } = job.progress;
  const done = job.status === "succeeded";
  const value = done ? total : step;
  const percent = total ? Math.floor((100 * value) / total) : 0;
  const progress = li.querySelector("progress");
  progress.max = total || 1;
  progress.value = value;
  li.querySelector(".progress-text").textContent = `${value}/${total} steps (${percent}%)`;
  li.querySelector(".job-error").textContent = job.error || "";
  const cancel = li.querySelector(".cancel");
  cancel.hidden = !ACTIVE.has(job.status);
  cancel.disabled = item.canceling;
  cancel.textContent = item.canceling ? "Canceling…" : "Cancel";
  li.querySelector(".show-video").hidden = !done || item.videoUrl !== null || item.loading;
  if (done && state.watched.has(job.id) && item.videoUrl === null && !item.loading) {
    loadVideo(job.id);
  }
}

function removeItem(id) {
  const item = state.items.get(id);
  if (!item) return;
  if (item.videoUrl) URL.revokeObjectURL(item.videoUrl);
  item.element.remove();
  state.items.delete(id);
}

async function cancelJob(id) {
  const item = state.items.get(id);
  // A running job stops at its next step: until then the button says so.
  item.canceling = true;
  updateItem(item.job);
  try {
    const response = await api("POST", `/v1/jobs/${id}/cancel`);
    updateItem(await response.json());
  } catch (failure) {
    if (failure.status === 401) return signOut("Your API key was refused (401); sign in again.");
    item.canceling = false;
    updateItem(item.job);
    item.element.querySelector(".job-error").textContent = failure.message;
  }
  return refresh();
}

async function loadVideo(id) {
  const item = state.items.get(id);
  if (!item || item.loading || item.videoUrl) return;
  item.loading = true;
  item.element.querySelector(".show-video").hidden = true;
  try {
    const response = await api("GET", `/v1/jobs/${id}/video`);
    const blob = await response.blob();
    if (!state.items.has(id)) return;
    item.videoUrl = URL.createObjectURL(blob);
    const video = item.element.querySelector("video");
    video.src = item.videoUrl;
    video.hidden = false;
    const download = item.element.querySelector(".download");
    download.href = item.videoUrl;
    download.hidden = false;
  } catch (failure) {
    item.element.querySelector(".job-error").textContent = failure.message;
    item.element.querySelector(".show-video").hidden = false;
  } finally {
    item.loading = false;
  }
}

// ---- wiring ---------------------------------------------------------------------------------

function start() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) {
      setError("api-key", "Enter an API key.");
      $("api-key").focus();
      return;
    }
    signIn(key, false).then((ok) => { if (ok) $("field-prompt").focus(); });
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("job-form").addEventListener("submit", submitJob);
  $("newer").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - PAGE_SIZE);
    refresh();
  });
  $("older").addEventListener("click", () => {
    if (state.nextOffset !== null) state.offset = state.nextOffset;
    refresh();
  });
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) signIn(saved, true);
}

start();
