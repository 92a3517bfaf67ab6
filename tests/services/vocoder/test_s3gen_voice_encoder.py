"""Chatterbox's voice encoder: silence trim, power mel, partials, LSTM, checkpoint and embedding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.services.vocoder.key_tables import file_key_rows, shapes_sha256
from voxserve.random_packs.tiny_voice_encoder import write_voice_encoder
from voxserve.vocoder.codecs.base import CodecInputError
from voxserve.vocoder.codecs.checkpoint import CheckpointError
from voxserve.vocoder.codecs.s3gen.voice_encoder import (
    PARTIAL_BATCH,
    STFT_BLOCK,
    WEIGHTS_FILE,
    VoiceEncoder,
    frame_rms,
    load_voice_encoder,
    mel_basis,
    mel_spectrogram,
    partial_layout,
    partials,
    trim_bounds,
    voice_encoder_shapes,
)

# sha256 of the `ve.safetensors` rows of specs/chatterbox-encode-keys.tsv as sorted
# "name<TAB>shape" rows.
VE_KEYS_SHA256 = "4db10aed588d50a0462005b29d3eb9e788ffd7ffb81b3825bc3ce8b1f9f28049"
KEY_TABLE = "chatterbox-encode-keys.tsv"
SR = 16000


def voice(
    f0: float, formants: tuple[float, ...], seconds: float = 4.0, amp: float = 0.1, seed: int = 0
) -> np.ndarray:
    """A crude voiced signal: harmonics of a wobbling f0 shaped by formant bumps, in syllables."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))) / SR
    out = np.zeros_like(t)
    for k in range(1, int(7000 / f0)):
        gain = sum(math.exp(-(((k * f0 - f) / 150) ** 2)) for f in formants) + 0.05
        out += gain * np.sin(k * phase) / k**0.5
    out = out * (np.sin(2 * np.pi * 2.5 * t) > -0.3) + 0.003 * rng.standard_normal(len(t))
    return (amp * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def ve_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pack = tmp_path_factory.mktemp("ve-pack")
    write_voice_encoder(pack / WEIGHTS_FILE, seed=5)
    return pack


@pytest.fixture(scope="module")
def encoder(ve_pack: Path) -> VoiceEncoder:
    return load_voice_encoder(ve_pack / WEIGHTS_FILE)


# --- checkpoint ---------------------------------------------------------------------------------


def test_names_and_shapes_equal_the_published_table() -> None:
    shapes = voice_encoder_shapes()
    assert len(shapes) == 16 and sum(math.prod(s) for s in shapes.values()) == 1_423_618
    assert shapes_sha256(shapes) == VE_KEYS_SHA256
    published = file_key_rows(KEY_TABLE, WEIGHTS_FILE)
    if published is not None:
        assert all(dtype == "float32" for _, dtype in published.values())
        assert shapes == {name: shape for name, (shape, _) in published.items()}


def test_loads_from_the_pack_or_the_file_and_names_bad_tensors(ve_pack: Path, tmp_path: Path) -> None:
    a, b = load_voice_encoder(ve_pack), load_voice_encoder(ve_pack / WEIGHTS_FILE)
    stored = load_file(ve_pack / WEIGHTS_FILE)
    for name, tensor in a.state_dict().items():
        assert tensor.dtype == torch.float32 and not tensor.requires_grad
        torch.testing.assert_close(tensor, stored[name], rtol=0, atol=0)
        torch.testing.assert_close(tensor, b.state_dict()[name], rtol=0, atol=0)
    assert not a.training

    broken = dict(stored)
    del broken["lstm.bias_hh_l2"]
    broken["proj.weight"] = torch.zeros(256, 128)
    save_file(broken, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(CheckpointError, match=r"lstm\.bias_hh_l2.*proj\.weight: expected \(256, 256\)"):
        load_voice_encoder(tmp_path)


# --- silence trim -------------------------------------------------------------------------------


def reference_trim(y: np.ndarray, top_db: float = 20.0) -> tuple[int, int]:
    """librosa.effects.trim, frame by frame: frame i is centred on sample 512 i, zeros outside."""
    n = len(y)
    rms = []
    for i in range(1 + n // 512):
        centre = i * 512
        frame = np.zeros(2048)
        lo, hi = max(0, centre - 1024), min(n, centre + 1024)
        frame[lo - (centre - 1024) : hi - (centre - 1024)] = y[lo:hi]
        rms.append(math.sqrt(float(np.mean(frame**2))))
    ref = max(max(rms), 1e-5)
    loud = [i for i, r in enumerate(rms) if 20 * math.log10(max(r, 1e-5)) - 20 * math.log10(ref) > -top_db]
    if not loud:
        return 0, 0
    return loud[0] * 512, min(n, (loud[-1] + 1) * 512)


def tone(n: int, amp: float, seed: int = 0) -> np.ndarray:
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    return (amp * np.sin(2 * np.pi * 220 * np.arange(n) / SR + phase)).astype(np.float32)


def crafted_signals() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    quiet = lambda n: (1e-4 * rng.standard_normal(n)).astype(np.float32)  # noqa: E731
    signals = [
        np.concatenate([quiet(8000), tone(16000, 0.3), quiet(8000)]),  # silence-speech-silence
        np.concatenate([tone(5000, 0.5), quiet(20000)]),  # loud from the first frame
        np.concatenate([quiet(20000), tone(5003, 0.5)]),  # loud to the end, length not a hop multiple
        tone(300, 0.2),  # shorter than one hop: a single frame
        np.concatenate([quiet(3000), tone(1, 0.9), quiet(3000)]),  # one loud sample
        # A middle level 19 dB and a tail 21 dB under the peak: the first is kept, the second not.
        np.concatenate(
            [tone(8192, 0.5), tone(8192, 0.5 * 10 ** (-19 / 20)), tone(8192, 0.5 * 10 ** (-21 / 20))]
        ),
        np.zeros(4000, dtype=np.float32),  # all at the floor: librosa keeps everything
    ]
    for k in range(6):  # speech starting and ending at arbitrary samples
        start, length = rng.integers(0, 6000), rng.integers(2000, 12000)
        signals.append(
            np.concatenate([quiet(int(start)), tone(int(length), 0.2, k), quiet(int(rng.integers(0, 6000)))])
        )
    return signals


def test_trim_follows_librosas_rule_on_crafted_signals() -> None:
    for y in crafted_signals():
        assert trim_bounds(y) == reference_trim(y), len(y)
    speech = crafted_signals()[0]
    start, end = trim_bounds(speech)
    # 0.5 s of quiet, a 1 s tone: the kept span starts within a frame of the tone and ends within one.
    assert 8000 - 1536 <= start <= 8000 and 24000 <= end <= 24000 + 1536


def test_frame_rms_equals_frame_by_frame_means() -> None:
    y = np.random.default_rng(2).standard_normal(7777).astype(np.float32)
    rms = frame_rms(y)
    assert rms.shape == (1 + 7777 // 512,)
    padded = np.pad(y.astype(np.float64), 1024)
    expected = [math.sqrt(float(np.mean(padded[i * 512 : i * 512 + 2048] ** 2))) for i in range(len(rms))]
    np.testing.assert_allclose(rms, expected, rtol=1e-12)


# --- mel ------------------------------------------------------------------------------------------


def slaney_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] librosa-style: Slaney mel scale, triangles, area-normalised."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0

    def hz_to_mel(f: float) -> float:
        return f / f_sp if f < min_log_hz else min_log_mel + math.log(f / min_log_hz) / logstep

    def mel_to_hz(m: float) -> float:
        return f_sp * m if m < min_log_mel else min_log_hz * math.exp(logstep * (m - min_log_mel))

    lo, hi = hz_to_mel(fmin), hz_to_mel(fmax)
    edges = [mel_to_hz(lo + (hi - lo) * k / (n_mels + 1)) for k in range(n_mels + 2)]
    weights = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        for j in range(n_fft // 2 + 1):
            f = j * sr / n_fft
            rise = (f - edges[i]) / (edges[i + 1] - edges[i])
            fall = (edges[i + 2] - f) / (edges[i + 2] - edges[i + 1])
            weights[i, j] = max(0.0, min(rise, fall)) * 2.0 / (edges[i + 2] - edges[i])
    return weights


def reference_mel(y: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Frame by frame: reflect-padded by 200 (mirror without the edge sample), periodic Hann(400),
    |rfft|^2 through the basis; [frames, 40]."""
    x = y.astype(np.float64)
    padded = np.concatenate([x[200:0:-1], x, x[-2:-202:-1]])
    window = np.hanning(401)[:-1]
    rows = [
        basis @ np.abs(np.fft.rfft(padded[i * 160 : i * 160 + 400] * window)) ** 2
        for i in range(1 + len(y) // 160)
    ]
    return np.stack(rows)


def test_filterbank_is_librosas_slaney_basis() -> None:
    basis = mel_basis()
    expected = slaney_filterbank(SR, 400, 40, 0.0, 8000.0)
    assert basis.shape == (40, 201)
    np.testing.assert_allclose(basis, expected, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("length", [401, 16000, 16159, 160 * STFT_BLOCK + 999])
def test_mel_is_a_power_mel_of_the_centred_stft(length: int) -> None:
    y = voice(140, (600, 1700), seconds=length / SR + 0.01)[:length]
    mel = mel_spectrogram(y)
    assert mel.shape == (1 + length // 160, 40) and mel.dtype == np.float32
    expected = reference_mel(y, slaney_filterbank(SR, 400, 40, 0.0, 8000.0))
    np.testing.assert_allclose(mel, expected, rtol=1e-4, atol=1e-9)
    # Power, no log: doubling the wave quadruples the mel.
    np.testing.assert_allclose(mel_spectrogram(2 * y), 4 * mel, rtol=1e-5, atol=1e-9)


# --- partials -------------------------------------------------------------------------------------


def test_partial_counts_follow_the_coverage_rule() -> None:
    assert [partial_layout(1 + s * SR // 160)[0] for s in (3, 6, 10)] == [3, 7, 12]
    for t in range(1, 1500):
        full = (t - 160) // 77 + 1 if t >= 160 else 0
        # The next window starts at 77 * full; it counts when 80 % of it is real frames.
        extra = full == 0 or (t - 77 * full) / 160 >= 0.8
        n = full + int(extra)
        assert partial_layout(t) == (n, 160 + 77 * (n - 1)), t


@pytest.mark.parametrize("frames", [50, 160, 247, 301, 1001])
def test_partials_are_windows_of_the_zero_padded_mel(frames: int) -> None:
    mel = np.arange(frames * 40, dtype=np.float32).reshape(frames, 40) + 1
    n, target = partial_layout(frames)
    out = partials(mel)
    assert out.shape == (n, 160, 40) and out.dtype == np.float32
    for i in range(n):
        for k in (0, 159):
            f = 77 * i + k
            expected = mel[f] if f < frames else np.zeros(40)
            np.testing.assert_array_equal(out[i, k], expected)
    # 247 frames: a third window would be 58 % real, so it is dropped with the frames past 237.
    if frames == 247:
        assert n == 2 and target == 237
    if frames == 301:  # ... while at 301 it is 92 % real and zero-padded to 314.
        assert n == 3 and target == 314


# --- network --------------------------------------------------------------------------------------


def reference_forward(model: VoiceEncoder, x: torch.Tensor) -> torch.Tensor:
    """A 3-layer LSTM cell loop (gates i, f, g, o), the top layer's last h, proj, ReLU, L2."""
    p = {k: v.double() for k, v in model.state_dict().items()}
    seq = x.double()
    for layer in range(3):
        h = torch.zeros(x.shape[0], 256, dtype=torch.float64)
        c = torch.zeros_like(h)
        outputs = []
        for t in range(seq.shape[1]):
            gates = (
                seq[:, t] @ p[f"lstm.weight_ih_l{layer}"].T
                + p[f"lstm.bias_ih_l{layer}"]
                + h @ p[f"lstm.weight_hh_l{layer}"].T
                + p[f"lstm.bias_hh_l{layer}"]
            )
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        seq = torch.stack(outputs, dim=1)
    raw = torch.relu(h @ p["proj.weight"].T + p["proj.bias"])
    return raw / raw.norm(dim=1, keepdim=True)


def test_lstm_path_equals_a_hand_written_cell_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    model = VoiceEncoder().eval()
    with torch.no_grad():  # every bias non-zero, so each of the two per layer is checked
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    x = torch.rand(3, 9, 40, generator=generator)
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (3, 256) and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), reference_forward(model, x), rtol=1e-4, atol=1e-5)


# --- embedding ------------------------------------------------------------------------------------


def test_embedding_is_unit_norm_deterministic_and_voice_dependent(encoder: VoiceEncoder) -> None:
    low, high = voice(110, (700, 1200, 2600)), voice(220, (300, 2300, 3000))
    a, b = encoder.speaker_embedding(low), encoder.speaker_embedding(high)
    assert a.shape == (256,) and a.dtype == np.float32
    assert abs(float(np.linalg.norm(a)) - 1) < 1e-5 and (a >= 0).all()
    np.testing.assert_array_equal(a, encoder.speaker_embedding(low.copy()))
    assert float(a @ b) < 0.95


def test_embedding_is_the_mean_of_partial_embeddings_after_trimming(encoder: VoiceEncoder) -> None:
    # 27 s: more partials than one batch of 32, with a second of near-silence on each side.
    core = voice(160, (500, 1500, 2500), seconds=27.0)
    quiet = np.full(SR, 1e-5, dtype=np.float32)
    wave = np.concatenate([quiet, core, quiet])
    start, end = trim_bounds(wave)
    assert SR - 2048 <= start and end <= len(wave) - SR + 2048
    windows = torch.from_numpy(partials(mel_spectrogram(wave[start:end])))
    assert len(windows) > PARTIAL_BATCH
    with torch.inference_mode():
        mean = encoder(windows).mean(dim=0)
    expected = (mean / mean.norm()).numpy()
    np.testing.assert_allclose(encoder.speaker_embedding(wave), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros((2, 16000), dtype=np.float32), "mono"),
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros(48000, dtype=np.float32), "silent"),
        (np.full(8000, np.nan, dtype=np.float32), "NaN"),
        (np.ones(8000, dtype=np.int16), "float"),
    ],
)
def test_input_it_cannot_embed_is_refused(encoder: VoiceEncoder, audio: np.ndarray, message: str) -> None:
    with pytest.raises(CodecInputError, match=rf"^audio .*{message}"):
        encoder.speaker_embedding(audio)
