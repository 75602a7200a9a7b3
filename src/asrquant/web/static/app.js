// The page of `asrquant web`: load the export with transformers.js (served locally), then
// transcribe a file or a recording in consecutive 30 s windows, each decoded greedily on its
// own, as asrquant's Python runner does (so the two can be compared word for word).
import { pipeline, env } from '/vendor/transformers/transformers.js';
import { LoopGuard } from '/loop.js';

const $ = (id) => document.getElementById(id);
const SAMPLE_RATE = 16000;
const WINDOW = 30 * SAMPLE_RATE;
const params = new URLSearchParams(location.search);

env.allowRemoteModels = false;           // never the Hugging Face hub
env.allowLocalModels = true;
env.localModelPath = '/models/';
env.useBrowserCache = false;             // each load downloads, so the byte count is the real one
env.backends.onnx.wasm.wasmPaths = '/vendor/transformers/';
env.backends.onnx.wasm.numThreads = self.crossOriginIsolated ? Number(params.get('threads') || 2) : 1;

function downloadedBytes() {
  // what this page fetched: the model files, the JavaScript and the WebAssembly
  return performance.getEntriesByType('resource').reduce((n, e) => n + (e.encodedBodySize || 0), 0);
}

async function pickDevice() {
  const asked = params.get('device');
  if (asked) return asked;
  try {
    if (navigator.gpu && await navigator.gpu.requestAdapter()) return 'webgpu';
  } catch (e) { /* no WebGPU here */ }
  return 'wasm';
}

const state = { asr: null, info: null, device: null, language: params.get('language') };

// transformers.js 3 applies only begin_suppress_tokens (its SuppressTokensLogitsProcessor is commented
// out): Whisper's non-speech tokens ("[MUSIC]", "♪"...) and, without timestamps, the timestamp
// tokens are suppressed here as single-token bad words, the rules of asrquant's runner and Whisper's.
async function suppressedTokens(gen) {
  const config = await (await fetch('/models/model/config.json')).json();
  const ids = [...(gen.suppress_tokens || [])];
  if (gen.no_timestamps_token_id) {
    for (let t = gen.no_timestamps_token_id + 1; t < config.vocab_size; t++) ids.push(t);
  }
  return ids.map((t) => [t]);
}

async function load() {
  state.info = await (await fetch('/artifact.json')).json();
  const gen = await (await fetch('/models/model/generation_config.json')).json();
  state.badWords = await suppressedTokens(gen);
  state.eot = gen.eos_token_id;
  state.device = await pickDevice();
  const t = performance.now();
  state.asr = await pipeline('automatic-speech-recognition', 'model', { dtype: state.info.dtype, device: state.device });
  const loadMs = performance.now() - t;
  $('model').textContent = `${state.info.name} · ${state.info.dtype} · ${(state.info.model_bytes / 1e6).toFixed(1)} MB of graphs`;
  $('load').textContent = `${(loadMs / 1000).toFixed(2)} s`;
  $('bytes').textContent = `${(downloadedBytes() / 1e6).toFixed(1)} MB`;
  const threads = env.backends.onnx.wasm.numThreads;
  $('backend').textContent = state.device === 'wasm' ? `WebAssembly, ${threads} thread${threads > 1 ? 's' : ''}` : state.device;
  $('file').disabled = false;
  $('record').disabled = !navigator.mediaDevices;
  setStatus('ready', 'Ready: pick an audio file or record.');
  window.asrquant.loadMs = loadMs;
}

function setStatus(stateName, text, extra = {}) {
  const s = $('status');
  s.dataset.state = stateName;
  for (const [k, v] of Object.entries(extra)) s.dataset[k] = v;
  s.textContent = text;
}

async function decodeAudio(arrayBuffer) {
  const ctx = new AudioContext({ sampleRate: SAMPLE_RATE });   // resamples anything to 16 kHz
  const buf = await ctx.decodeAudioData(arrayBuffer);
  await ctx.close();
  const out = new Float32Array(buf.length);
  for (let c = 0; c < buf.numberOfChannels; c++) {
    const ch = buf.getChannelData(c);
    for (let i = 0; i < out.length; i++) out[i] += ch[i] / buf.numberOfChannels;
  }
  return out;
}

const MAX_NEW_TOKENS = 224;   // the runner's default (openai-whisper's sample_len)

async function transcribe(audio) {
  const options = { return_timestamps: false, bad_words_ids: state.badWords };
  if (state.info.multilingual) { options.language = state.language || 'en'; options.task = 'transcribe'; }
  const texts = [];
  const stops = [];   // per window, as the runner's Transcript.stops: "eot", "loop" or "max_length"
  const t = performance.now();
  for (let start = 0; start < Math.max(audio.length, 1); start += WINDOW) {
    // The runner's loop guard and token budget, applied at each step; one token more for the forced end.
    const guard = new LoopGuard(state.eot, MAX_NEW_TOKENS);
    const out = await state.asr(audio.subarray(start, start + WINDOW),
                                { ...options, max_new_tokens: MAX_NEW_TOKENS + 1, logits_processor: [guard] });
    const text = out.text.trim();
    if (text) texts.push(text);
    stops.push(guard.stop);
  }
  const ms = performance.now() - t;
  return { text: texts.join(' '), stops, ms, audio_s: audio.length / SAMPLE_RATE };
}

// Marked as `asrquant transcribe` marks it: " [loop]", " [max_length]" after the text.
const flags = (stops) => stops.filter((s) => s !== 'eot').map((s) => ` [${s}]`).join('');

async function run(arrayBuffer, name) {
  setStatus('busy', `Transcribing ${name}…`, { clip: name });
  $('text').textContent = '';
  try {
    const audio = await decodeAudio(arrayBuffer);
    const r = await transcribe(audio);
    $('text').textContent = r.text + flags(r.stops);
    $('audio-s').textContent = `${r.audio_s.toFixed(2)} s`;
    $('time').textContent = `${(r.ms / 1000).toFixed(2)} s`;
    $('rtf').textContent = (r.ms / 1000 / r.audio_s).toFixed(3);
    $('bytes').textContent = `${(downloadedBytes() / 1e6).toFixed(1)} MB`;
    window.asrquant.results.push({ clip: name, ...r });
    setStatus('done', `Done: ${name}`, { clip: name, count: window.asrquant.results.length });
  } catch (e) {
    setStatus('error', `Error: ${e.message || e}`, { clip: name });
    throw e;
  }
}

$('file').addEventListener('change', async (ev) => {
  const f = ev.target.files[0];
  if (f) await run(await f.arrayBuffer(), f.name);
});

let recorder = null;
$('record').addEventListener('click', async () => {
  if (recorder) { recorder.stop(); return; }
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const chunks = [];
  recorder = new MediaRecorder(stream);
  recorder.ondataavailable = (e) => chunks.push(e.data);
  recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    recorder = null;
    $('record').textContent = 'Record';
    await run(await new Blob(chunks).arrayBuffer(), 'recording');
  };
  recorder.start();
  $('record').textContent = 'Stop';
  setStatus('recording', 'Recording… press Stop to transcribe.');
});

// For scripts driving the page (the browser test, the benchmark): results in order, and the
// bytes fetched so far.
window.asrquant = { results: [], downloadedBytes, loadMs: null };
load().catch((e) => setStatus('error', `Error loading the model: ${e.message || e}`));
