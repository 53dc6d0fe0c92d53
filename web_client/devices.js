// Camera and microphone: getting them (the camera when there is one: a
// consultation can be audio only, never without the microphone), explaining
// why we could not, choosing them, and the microphone level of the device check.

const CONSTRAINTS = {
  audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
};

/** `message` is a catalogue key (locales/*.json). */
export class DeviceError extends Error {
  constructor(message) {
    super(message);
    this.name = "DeviceError";
  }
}

const CAMERA_FAILURES = new Set([
  "NotFoundError",
  "NotReadableError",
  "NotAllowedError",
  "OverconstrainedError",
  "AbortError",
  "SecurityError",
]);

function constraints({ cameraId = "", microphoneId = "" } = {}, { video = true } = {}) {
  const audio = { ...CONSTRAINTS.audio };
  if (microphoneId) audio.deviceId = { exact: microphoneId };
  if (!video) return { audio };
  const camera = { ...CONSTRAINTS.video };
  if (cameraId) camera.deviceId = { exact: cameraId };
  return { audio, video: camera };
}

/**
 * The microphone, and the camera when there is one that works. Resolves
 * `{stream, cameraProblem}`: `cameraProblem` is null, or the catalogue key
 * that says why the consultation will be audio only (no camera, in use by
 * another app, refused). Rejects with a DeviceError only when the microphone
 * fails: without it there is no consultation. `choice` holds the deviceIds
 * picked in the selects (empty: the browser's default).
 */
export async function openMedia(choice = {}) {
  if (!navigator.mediaDevices || typeof navigator.mediaDevices.getUserMedia !== "function") {
    // Also what happens on plain http:// outside localhost (no secure context).
    throw new DeviceError("devices.no_camera_api");
  }
  let cameraError;
  try {
    const stream = await navigator.mediaDevices.getUserMedia(constraints(choice));
    return { stream, cameraProblem: null };
  } catch (error) {
    if (!CAMERA_FAILURES.has(error && error.name)) throw new DeviceError("devices.failed");
    cameraError = error; // Maybe only the camera: try the microphone alone.
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints(choice, { video: false }));
  } catch (error) {
    throw new DeviceError(explainMicrophoneError(error));
  }
  return { stream, cameraProblem: explainCameraError(cameraError) };
}

function explainCameraError(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "audio.camera_blocked";
    case "NotReadableError":
    case "AbortError":
      return "audio.camera_in_use";
    default:
      return "audio.camera_not_found";
  }
}

function explainMicrophoneError(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "audio.mic_blocked";
    case "NotFoundError":
    case "OverconstrainedError":
      return "audio.mic_not_found";
    case "NotReadableError":
    case "AbortError":
      return "audio.mic_in_use";
    default:
      return "audio.mic_failed";
  }
}

/**
 * One new track of `kind` ("audio" | "video") from `deviceId` (empty: the
 * default). A camera replacing `like` keeps its size: the encoder on the
 * sender then goes on without reconfiguring.
 */
export async function openTrack(kind, deviceId = "", like = null) {
  const choice = kind === "audio" ? { microphoneId: deviceId } : { cameraId: deviceId };
  const wanted = constraints(choice);
  const size = like && typeof like.getSettings === "function" ? like.getSettings() : {};
  if (kind === "video" && size.width && size.height) {
    wanted.video = { ...wanted.video, width: { ideal: size.width }, height: { ideal: size.height } };
  }
  const stream = await navigator.mediaDevices.getUserMedia(
    kind === "audio" ? { audio: wanted.audio } : { video: wanted.video },
  );
  return kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
}

/** The cameras, microphones and speakers the browser shows us: {deviceId, label} each. */
export async function listDevices() {
  const empty = { cameras: [], microphones: [], speakers: [] };
  if (!navigator.mediaDevices || typeof navigator.mediaDevices.enumerateDevices !== "function") {
    return empty;
  }
  let devices = [];
  try {
    devices = await navigator.mediaDevices.enumerateDevices();
  } catch {
    return empty;
  }
  const of = (kind) =>
    devices
      .filter((d) => d.kind === kind && d.deviceId)
      .map((d) => ({ deviceId: d.deviceId, label: d.label }));
  return { cameras: of("videoinput"), microphones: of("audioinput"), speakers: of("audiooutput") };
}

/** Whether the page can send sound to a chosen speaker (not Safari nor Firefox < 116). */
export function canChooseSpeaker() {
  return typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;
}

/** The deviceId a track comes from, or "". */
export function deviceOf(track) {
  if (!track || typeof track.getSettings !== "function") return "";
  return track.getSettings().deviceId || "";
}

export function stopStream(stream) {
  if (!stream) return;
  for (const track of stream.getTracks()) track.stop();
}

/**
 * Drives a <meter> from the microphone's loudness. Uses an AnalyserNode that
 * is not connected to the speakers, so the person does not hear themselves.
 */
export class MicLevel {
  constructor(stream, meter) {
    this.meter = meter;
    this.frame = 0;
    this.level = 0;
    this.context = null;
    const AudioContextClass = window.AudioContext || window.webkitAudioContext;
    if (!AudioContextClass || stream.getAudioTracks().length === 0) return;
    this.context = new AudioContextClass();
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 1024;
    this.samples = new Float32Array(this.analyser.fftSize);
    this.context.createMediaStreamSource(stream).connect(this.analyser);
    // Browsers may start the context suspended until the person interacts.
    this.resume = () => {
      if (this.context && this.context.state === "suspended") this.context.resume().catch(() => {});
    };
    this.resume();
    document.addEventListener("pointerdown", this.resume);
    document.addEventListener("keydown", this.resume);
    this.tick = this.tick.bind(this);
    this.frame = requestAnimationFrame(this.tick);
  }

  tick() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const sample of this.samples) sum += sample * sample;
    const rms = Math.sqrt(sum / this.samples.length);
    // Speech sits around 0.02–0.2 RMS; scale it so talking fills most of the
    // bar, and let it fall slowly so the eye can follow.
    const target = Math.min(1, rms * 5);
    this.level = Math.max(target, this.level * 0.9);
    this.meter.value = this.level;
    this.frame = requestAnimationFrame(this.tick);
  }

  stop() {
    cancelAnimationFrame(this.frame);
    this.meter.value = 0;
    if (!this.context) return;
    document.removeEventListener("pointerdown", this.resume);
    document.removeEventListener("keydown", this.resume);
    this.context.close().catch(() => {});
    this.context = null;
  }
}
