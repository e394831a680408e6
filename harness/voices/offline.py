"""Offline voices: espeak-ng, flite and festival, run as subprocesses.

They are local and deterministic (the same engine version gives byte-identical WAVs), so
they may render on a cache miss anywhere, CI included. Each engine silently falls back to
a default voice when given an unknown name; these classes check the name first instead.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

from harness.audio.clip import Clip
from harness.voices.base import RecordMode, VoiceError, VoiceKey, VoiceUnavailable
from harness.voices.cache import CachedVoice, TTSCache

__all__ = [
    "DEFAULT_RATE",
    "OFFLINE_VOICE_SPECS",
    "EspeakVoice",
    "FestivalVoice",
    "FliteVoice",
    "default_voice",
]

#: espeak-ng's speaking rate for the default caller, in words per minute.
DEFAULT_RATE = 160

#: A timeout for one subprocess render, in seconds.
DEFAULT_TIMEOUT = 30.0

_APT = {"espeak-ng": "espeak-ng", "flite": "flite", "text2wave": "festival festvox-kallpc16k"}


def _which(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise VoiceUnavailable(
            f"{binary} is not installed (not on PATH): install it with "
            f"`apt-get install {_APT.get(binary, binary)}`"
        )
    return path


def _run(cmd: list[str], *, timeout: float, stdin: bytes | None = None) -> str:
    """Run an engine; return its stderr. Errors name the binary and what went wrong."""
    binary = Path(cmd[0]).name
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        package = _APT.get(binary, binary)
        raise VoiceUnavailable(
            f"{binary} is not installed: install it with `apt-get install {package}`"
        ) from None
    except subprocess.TimeoutExpired:
        raise VoiceUnavailable(f"{binary} did not finish within {timeout:g}s") from None
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        raise VoiceUnavailable(f"{binary} exited with status {proc.returncode}: {err[-500:]}")
    return err


def _read_output(path: Path, binary: str) -> Clip:
    if not path.is_file() or path.stat().st_size <= 44:
        raise VoiceUnavailable(f"{binary} produced no audio")
    return Clip.read_wav(path)


@functools.cache
def _version(binary: str) -> str | None:
    if shutil.which(binary) is None:
        return None
    try:
        proc = subprocess.run(
            [binary, "--version"], capture_output=True, timeout=10, check=False, text=True
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (proc.stdout + proc.stderr).strip()
    for line in text.splitlines():
        if "version" in line.lower() or re.search(r"\d+\.\d+", line):
            return line.strip()
    return text[:100] or None


# -- espeak-ng -------------------------------------------------------------------------


def _voice_table(arg: str) -> list[list[str]]:
    out = subprocess.run(
        [_which("espeak-ng"), arg], capture_output=True, timeout=10, check=False, text=True
    ).stdout
    return [line.split() for line in out.splitlines()[1:] if line.strip()]


@functools.cache
def _espeak_files() -> dict[str, str]:
    """Lower-cased ``-v`` names (language, file path, file name) -> espeak-ng voice file.

    For a language with several voices the highest-priority non-MBROLA one wins.
    """
    rows = sorted(
        (int(r[0]) if r[0].isdigit() else 99, r[1], r[4])
        for r in _voice_table("--voices")
        if len(r) >= 5
    )
    out: dict[str, str] = {}
    for _pty, lang, path in rows:
        if path.startswith("mb/"):
            continue
        for name in (lang.lower(), path.lower(), path.rsplit("/", 1)[-1].lower()):
            out.setdefault(name, path)
    return out


def espeak_languages() -> frozenset[str]:
    """Names espeak-ng accepts for ``-v``: languages (``en-gb-scotland``) and voice files."""
    return frozenset(_espeak_files())


@functools.cache
def espeak_variants() -> frozenset[str]:
    """Variant names that can follow ``+`` (``f3``, ``m3``, ``klatt``…)."""
    return frozenset(
        row[4].rsplit("/", 1)[-1] for row in _voice_table("--voices=variant") if len(row) >= 5
    )


class EspeakVoice(CachedVoice):
    """An espeak-ng voice: ``language`` (``en-us``, ``en-gb-scotland``, ``en-029``…),
    an optional ``variant`` (``f3``, ``m3``…), a ``rate`` in words per minute (80-450)
    and an optional ``pitch`` (0-99)."""

    renders_locally = True

    def __init__(
        self,
        language: str = "en-us",
        variant: str | None = None,
        *,
        rate: int = DEFAULT_RATE,
        pitch: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        cache: TTSCache | str | None = None,
        record_mode: RecordMode | str | None = None,
    ) -> None:
        super().__init__(cache=cache, record_mode=record_mode)
        if "+" in language:
            if variant is not None:
                raise VoiceError(
                    f"language={language!r} already names a variant; drop variant={variant!r}"
                )
            language, variant = language.split("+", 1)
        if not language or not re.fullmatch(r"[A-Za-z0-9_\-/]+", language):
            raise VoiceError(f"language={language!r} is not an espeak-ng voice name like 'en-us'")
        if variant is not None and not re.fullmatch(r"[A-Za-z0-9_\- ]+", variant):
            raise VoiceError(f"variant={variant!r} is not an espeak-ng variant like 'f3'")
        if not (isinstance(rate, int) and 80 <= rate <= 450):
            raise VoiceError(f"rate={rate!r} must be a whole number of words per minute, 80-450")
        if pitch is not None and not (isinstance(pitch, int) and 0 <= pitch <= 99):
            raise VoiceError(f"pitch={pitch!r} must be a whole number 0-99")
        self.language = language
        self.variant = variant
        self.rate = rate
        self.pitch = pitch
        self.timeout = timeout

    @property
    def name(self) -> str:
        return self.language + (f"+{self.variant}" if self.variant else "")

    @property
    def key(self) -> VoiceKey:
        return VoiceKey.make("espeak", self.name, None, {"rate": self.rate, "pitch": self.pitch})

    def engine_version(self) -> str | None:
        return _version("espeak-ng")

    def check(self) -> None:
        """Raise :class:`VoiceUnavailable` unless espeak-ng is installed and has this voice."""
        _which("espeak-ng")
        if self.language.lower() not in espeak_languages():
            english = sorted(n for n in espeak_languages() if n.startswith("en") and "/" not in n)
            raise VoiceUnavailable(
                f"espeak-ng has no voice {self.language!r} (it would silently fall back to "
                f"its default); English voices here: {', '.join(english)}"
            )
        if self.variant is not None and self.variant not in espeak_variants():
            raise VoiceUnavailable(
                f"espeak-ng has no variant {self.variant!r}; try one of: "
                f"{', '.join(sorted(v for v in espeak_variants() if len(v) <= 3))}"
            )

    def render(self, text: str) -> Clip:
        self.check()
        # espeak-ng 1.51 ignores a variant after some language names ("en-gb+f4" speaks
        # plain en-gb) but honours it after the voice file ("gmw/en+f4"), so pass the file.
        target = _espeak_files()[self.language.lower()]
        if self.variant:
            target += f"+{self.variant}"
        cmd = [_which("espeak-ng"), "-v", target, "-s", str(self.rate), "-b", "1"]
        if self.pitch is not None:
            cmd += ["-p", str(self.pitch)]
        with tempfile.TemporaryDirectory(prefix="harness-espeak-") as tmp:
            out = Path(tmp) / "out.wav"
            _run([*cmd, "-w", str(out), "--stdin"], timeout=self.timeout, stdin=text.encode())
            return _read_output(out, "espeak-ng")


# -- flite and festival ------------------------------------------------------------


@functools.cache
def flite_voices() -> frozenset[str]:
    """The voices built into the installed flite (``flite -lv``)."""
    out = subprocess.run(
        [_which("flite"), "-lv"], capture_output=True, timeout=10, check=False, text=True
    ).stdout
    return frozenset(out.split(":", 1)[-1].split())


@functools.cache
def festival_voices() -> frozenset[str]:
    """The voices the installed festival knows (``(voice.list)``)."""
    if shutil.which("festival") is None:
        return frozenset()
    out = subprocess.run(
        ["festival", "-b", "(print (voice.list))"],
        capture_output=True,
        timeout=20,
        check=False,
        text=True,
    ).stdout
    return frozenset(re.findall(r"[A-Za-z0-9_]+", out))


def _check_stretch(stretch: float) -> float:
    if isinstance(stretch, bool) or not isinstance(stretch, int | float):
        raise VoiceError(f"stretch={stretch!r} must be a number (1.0 = the voice's own pace)")
    if not 0.25 <= float(stretch) <= 4.0:
        raise VoiceError(f"stretch={stretch!r} must be 0.25-4.0 (above 1 is slower)")
    return float(stretch)


class _TextFileVoice(CachedVoice):
    """A voice whose engine reads the line from a text file and writes a WAV file (flite,
    festival): a ``voice`` name the engine must know, and ``stretch``, which scales
    durations (1.0 is the voice's own pace, 1.2 is 20% slower)."""

    renders_locally = True
    engine: ClassVar[str]
    binary: ClassVar[str]
    default_name: ClassVar[str]
    name_pattern: ClassVar[str]

    def __init__(
        self,
        voice: str | None = None,
        *,
        stretch: float = 1.0,
        timeout: float = DEFAULT_TIMEOUT,
        cache: TTSCache | str | None = None,
        record_mode: RecordMode | str | None = None,
    ) -> None:
        super().__init__(cache=cache, record_mode=record_mode)
        voice = self.default_name if voice is None else voice
        if not voice or not re.fullmatch(self.name_pattern, voice):
            raise VoiceError(
                f"voice={voice!r} is not a {self.engine} voice name like {self.default_name!r}"
            )
        self.voice = voice
        self.stretch = _check_stretch(stretch)
        self.timeout = timeout

    @property
    def key(self) -> VoiceKey:
        settings = {"stretch": self.stretch} if self.stretch != 1.0 else {}
        return VoiceKey.make(self.engine, self.voice, None, settings)

    def engine_version(self) -> str | None:
        return _version(self.engine)

    def known_voices(self) -> frozenset[str]:
        raise NotImplementedError

    def unknown_voice(self) -> str:
        """The message for a voice the engine does not have."""
        return (
            f"{self.engine} has no voice {self.voice!r}; voices here: "
            f"{', '.join(sorted(self.known_voices())) or 'none'}"
        )

    def command(self, src: Path, out: Path) -> list[str]:
        """The engine's command line: read ``src``, write ``out``."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`VoiceUnavailable` unless the engine is installed and has the voice."""
        _which(self.binary)
        if self.voice not in self.known_voices():
            raise VoiceUnavailable(self.unknown_voice())

    def render(self, text: str) -> Clip:
        self.check()
        with tempfile.TemporaryDirectory(prefix=f"harness-{self.engine}-") as tmp:
            src, out = Path(tmp) / "in.txt", Path(tmp) / "out.wav"
            src.write_text(text + "\n", encoding="utf-8")
            err = _run(self.command(src, out), timeout=self.timeout)
            if "SIOD ERROR" in err:  # festival reports its Scheme errors and exits 0
                raise VoiceUnavailable(f"{self.engine} failed: {err[-500:]}")
            return _read_output(out, self.engine)


class FliteVoice(_TextFileVoice):
    """A flite built-in voice (``kal``, ``kal16``, ``slt``, ``rms``, ``awb``)."""

    engine = "flite"
    binary = "flite"
    default_name = "slt"
    name_pattern = r"[A-Za-z0-9_\-]+"

    def known_voices(self) -> frozenset[str]:
        return flite_voices()

    def unknown_voice(self) -> str:
        return (
            f"flite has no voice {self.voice!r} (it would silently fall back to kal); "
            f"voices here: {', '.join(sorted(flite_voices()))}"
        )

    def command(self, src: Path, out: Path) -> list[str]:
        cmd = [_which("flite"), "-voice", self.voice]
        if self.stretch != 1.0:
            cmd += ["--setf", f"duration_stretch={self.stretch!r}"]
        return [*cmd, "-f", str(src), "-o", str(out)]


class FestivalVoice(_TextFileVoice):
    """A festival voice, rendered with ``text2wave`` (Debian ships ``kal_diphone``).

    Supported for completeness; not in :func:`offline_voices` because Debian's only
    festival voice uses the same CMU kal diphones as ``flite:kal``.
    """

    engine = "festival"
    binary = "text2wave"
    default_name = "kal_diphone"
    name_pattern = r"[A-Za-z0-9_]+"

    def known_voices(self) -> frozenset[str]:
        return festival_voices()

    def command(self, src: Path, out: Path) -> list[str]:
        cmd = [_which("text2wave"), "-eval", f"(voice_{self.voice})"]
        if self.stretch != 1.0:
            cmd += ["-eval", f"(Parameter.set 'Duration_Stretch {self.stretch!r})"]
        return [*cmd, "-o", str(out), str(src)]


# -- the catalogue ---------------------------------------------------------------------

#: The offline voices the harness offers, as voice specs (see :mod:`harness.voices.spec`).
OFFLINE_VOICE_SPECS: tuple[str, ...] = (
    "espeak:en-us@160",
    "espeak:en-us+f3@160",
    "espeak:en-gb@160",
    "espeak:en-gb+f4@160",
    "espeak:en-gb-scotland@160",
    "espeak:en-029@160",
    "espeak:en-us-nyc@160",
    "espeak:en-gb-x-rp+m3@160",
    "espeak:en-gb-x-gbcwmd@160",
    "flite:kal",
    "flite:slt",
    "flite:rms",
    "flite:awb",
)


def default_voice(
    *, cache: TTSCache | str | None = None, record_mode: RecordMode | str | None = None
) -> EspeakVoice:
    """The default synthetic caller: espeak-ng ``en-us`` at 160 words per minute."""
    return EspeakVoice("en-us", rate=DEFAULT_RATE, cache=cache, record_mode=record_mode)
