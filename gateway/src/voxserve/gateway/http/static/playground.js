"use strict";

// The API streams pcm as raw s16le mono at this rate; the AudioContext runs at it too, so no resampling.
const SAMPLE_RATE = 24000;
// Scheduling slightly ahead of currentTime keeps the first buffer from starting in the past.
const LEAD_SECONDS = 0.05;
// One waveform bar per 10 ms of audio.
const PEAK_BLOCK = 240;
const MIN_SECONDS = 5;

const $ = (id) => document.getElementById(id);

const playground = {
  state: "idle",
  lastError: null,
  pressedAt: null,
  playbackStartedAt: null,
  synthesisDoneAt: null,
  firstAudioMs: null,
  bytesReceived: 0,
  chunksScheduled: 0,
  voices: [],
};
window.playground = playground;

let audio = null;
let sources = [];
let playAt = 0;
let firstStartTime = 0;
let peaks = [];
let peakTail = [];
let recorder = null;
let recordedBlob = null;

function headers(extra) {
  const result = Object.assign({}, extra || {});
  const key = $("api-key").value.trim();
  if (key) result.Authorization = "Bearer " + key;
  return result;
}

async function apiError(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && body.error && body.error.message) return new Error(body.error.message);
  } catch (_) {
    // Not the API's JSON error shape (a proxy page, say): show the status and the raw text instead.
  }
  return new Error(`HTTP ${response.status}${text ? ": " + text.slice(0, 200) : ""}`);
}

function setStatus(element, message, isError) {
  element.textContent = message;
  element.classList.toggle("error", Boolean(isError));
}

async function loadVoices(selectId) {
  const select = $("voice");
  try {
    const response = await fetch("/v1/audio/voices", { headers: headers() });
    if (!response.ok) throw await apiError(response);
    const body = await response.json();
    playground.voices = body.data.map((voice) => voice.id);
    const keep = selectId || select.value;
    select.replaceChildren(
      ...body.data.map((voice) => {
        const label = voice.name && voice.name !== voice.id ? `${voice.name} (${voice.id})` : voice.id;
        return new Option(label, voice.id);
      }),
    );
    if (playground.voices.includes(keep)) select.value = keep;
  } catch (error) {
    setStatus($("status"), "Voices: " + error.message, true);
  }
}

function speechRequest(format) {
  return {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify({
      model: "voxserve",
      input: $("text").value,
      voice: $("voice").value,
      response_format: format,
    }),
  };
}

function stopPlayback() {
  for (const source of sources) {
    try {
      source.stop();
    } catch (_) {
      // Already ended.
    }
  }
  sources = [];
}

function schedule(samples) {
  const buffer = audio.createBuffer(1, samples.length, SAMPLE_RATE);
  buffer.copyToChannel(samples, 0);
  const source = audio.createBufferSource();
  source.buffer = buffer;
  source.connect(audio.destination);
  // Back to back: each buffer starts where the previous one ends, unless the stream fell behind.
  playAt = Math.max(playAt, audio.currentTime + LEAD_SECONDS);
  if (playground.chunksScheduled === 0) firstStartTime = playAt;
  source.start(playAt);
  playAt += buffer.duration;
  sources.push(source);
  source.onended = () => {
    sources = sources.filter((s) => s !== source);
  };
  if (playground.chunksScheduled === 0) {
    playground.playbackStartedAt = performance.now();
    playground.firstAudioMs = playground.playbackStartedAt - playground.pressedAt;
    $("first-audio").textContent = `${Math.round(playground.firstAudioMs)} ms`;
  }
  playground.chunksScheduled += 1;
}

function addPeaks(samples) {
  for (const sample of samples) {
    peakTail.push(Math.abs(sample));
    if (peakTail.length === PEAK_BLOCK) {
      peaks.push(Math.max(...peakTail));
      peakTail = [];
    }
  }
}

function drawWaveform() {
  const canvas = $("waveform");
  const context = canvas.getContext("2d");
  const { width, height } = canvas;
  context.fillStyle = "#10151f";
  context.fillRect(0, 0, width, height);
  if (peaks.length) {
    // The picture spans at least MIN_SECONDS and grows to fit the whole utterance as it arrives.
    const blockWidth = width / Math.max(peaks.length, (MIN_SECONDS * SAMPLE_RATE) / PEAK_BLOCK);
    context.fillStyle = "#5fb3ff";
    peaks.forEach((peak, i) => {
      const bar = Math.max(1, peak * height);
      context.fillRect(i * blockWidth, (height - bar) / 2, Math.max(1, blockWidth * 0.8), bar);
    });
    const received = (peaks.length * PEAK_BLOCK) / SAMPLE_RATE;
    const played = audio ? Math.min(received, Math.max(0, audio.currentTime - firstStartTime)) : 0;
    context.fillStyle = "#ffcc4d";
    context.fillRect(Math.min((played * SAMPLE_RATE * blockWidth) / PEAK_BLOCK, width - 2), 0, 2, height);
  }
  if (playground.state === "speaking" || sources.length) requestAnimationFrame(drawWaveform);
}

async function speak() {
  playground.pressedAt = performance.now();
  if (!audio) audio = new AudioContext({ sampleRate: SAMPLE_RATE });
  await audio.resume();
  stopPlayback();
  Object.assign(playground, {
    state: "speaking",
    lastError: null,
    playbackStartedAt: null,
    synthesisDoneAt: null,
    firstAudioMs: null,
    bytesReceived: 0,
    chunksScheduled: 0,
  });
  playAt = 0;
  peaks = [];
  peakTail = [];
  $("first-audio").textContent = "–";
  $("received").textContent = "0";
  $("speak").disabled = true;
  setStatus($("status"), "speaking…");
  requestAnimationFrame(drawWaveform);
  try {
    const response = await fetch("/v1/audio/speech", speechRequest("pcm"));
    if (!response.ok) throw await apiError(response);
    const reader = response.body.getReader();
    // A chunk boundary may split a 16-bit sample; its first byte waits for the next chunk.
    let carry = null;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      playground.bytesReceived += value.length;
      $("received").textContent = String(playground.bytesReceived);
      let bytes = value;
      if (carry !== null) {
        bytes = new Uint8Array(value.length + 1);
        bytes[0] = carry;
        bytes.set(value, 1);
        carry = null;
      }
      if (bytes.length % 2) {
        carry = bytes[bytes.length - 1];
        bytes = bytes.subarray(0, bytes.length - 1);
      }
      if (!bytes.length) continue;
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
      const samples = new Float32Array(bytes.length / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = view.getInt16(2 * i, true) / 32768;
      schedule(samples);
      addPeaks(samples);
    }
    playground.synthesisDoneAt = performance.now();
    playground.state = "done";
    const seconds = playground.bytesReceived / 2 / SAMPLE_RATE;
    setStatus($("status"), `done: ${seconds.toFixed(2)} s of audio`);
  } catch (error) {
    // After the headers the API can only report a failure by cutting the stream short.
    const message = playground.bytesReceived
      ? `the audio stream broke off after ${playground.bytesReceived} bytes (${error.message}); see the gateway log`
      : error.message;
    playground.state = "error";
    playground.lastError = message;
    setStatus($("status"), message, true);
  } finally {
    $("speak").disabled = false;
  }
}

async function download() {
  const format = $("format").value;
  const link = $("download-link");
  try {
    setStatus($("status"), `preparing ${format}…`);
    const response = await fetch("/v1/audio/speech", speechRequest(format));
    if (!response.ok) throw await apiError(response);
    const blob = await response.blob();
    if (link.href) URL.revokeObjectURL(link.href);
    link.href = URL.createObjectURL(blob);
    link.download = `speech.${format}`;
    link.textContent = `speech.${format} (${blob.size} bytes)`;
    link.hidden = false;
    link.click();
    setStatus($("status"), `downloaded speech.${format}`);
  } catch (error) {
    setStatus($("status"), error.message, true);
  }
}

async function toggleRecording() {
  const button = $("record");
  if (recorder) {
    recorder.stop();
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const parts = [];
    recorder = new MediaRecorder(stream);
    recorder.ondataavailable = (event) => parts.push(event.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((track) => track.stop());
      recordedBlob = new Blob(parts, { type: recorder.mimeType });
      $("recorded").textContent = `recording: ${recordedBlob.size} bytes`;
      button.textContent = "Record";
      recorder = null;
    };
    recorder.start();
    button.textContent = "Stop";
    $("recorded").textContent = "recording…";
  } catch (error) {
    recorder = null;
    setStatus($("voice-status"), "Microphone: " + error.message, true);
  }
}

async function createVoice() {
  const status = $("voice-status");
  const file = $("voice-file").files[0];
  const audioPart = file || recordedBlob;
  if (!audioPart) {
    setStatus(status, "Choose an audio file or record one first.", true);
    return;
  }
  const id = $("voice-id").value.trim();
  const form = new FormData();
  // A recording has no file name; its extension tells the server the container.
  const extension = recordedBlob && recordedBlob.type.includes("ogg") ? "ogg" : "webm";
  form.append("file", audioPart, file ? file.name : `recording.${extension}`);
  form.append("id", id);
  form.append("transcript", $("transcript").value);
  form.append("consent", $("consent").checked ? "true" : "false");
  setStatus(status, "uploading…");
  try {
    const response = await fetch("/v1/audio/voices", { method: "POST", headers: headers(), body: form });
    if (!response.ok) throw await apiError(response);
    const voice = await response.json();
    setStatus(status, `created voice ${voice.id}`);
    await loadVoices(voice.id);
  } catch (error) {
    setStatus(status, error.message, true);
  }
}

$("speak").addEventListener("click", speak);
$("download").addEventListener("click", download);
$("record").addEventListener("click", toggleRecording);
$("create-voice").addEventListener("click", createVoice);
$("api-key").addEventListener("change", () => loadVoices());
drawWaveform();
loadVoices();
