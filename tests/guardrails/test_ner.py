"""Named entities through presidio's spaCy engine, from a pipeline saved to disk (a
rule-based one: no statistical model ships on PyPI), and the startup refusal when a
configured model is not installed."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy

from gateway.guardrails.pii import NerModelMissing, PiiScanner
from gateway.policy.models import PiiGuardrail


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([  # type: ignore[attr-defined]
        {"label": "PERSON", "pattern": [{"LOWER": "alice"}, {"LOWER": "smith"}]},
        {"label": "GPE", "pattern": "Lyon"},
    ])  # fmt: skip
    directory = tmp_path_factory.mktemp("ner")
    nlp.to_disk(directory)
    return directory


async def test_person_and_location_alongside_pattern_entities(pipeline: Path) -> None:
    config = PiiGuardrail(type="pii", ner_model=str(pipeline))
    scanner = PiiScanner("pii", config)
    text = "Alice Smith from Lyon, mail alice@example.com"
    found = {(text[f.start : f.end], f.entity) for f in await scanner.scan(text)}
    assert found == {("Alice Smith", "PERSON"), ("Lyon", "LOCATION"),
                     ("alice@example.com", "EMAIL_ADDRESS")}  # fmt: skip


def test_a_missing_model_is_named_at_construction() -> None:
    with pytest.raises(NerModelMissing, match="spaCy model 'en_core_web_lg' is not installed"):
        PiiScanner("pii", PiiGuardrail(type="pii", ner_model="en_core_web_lg"))


def test_serve_refuses_to_start_and_says_why(tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "version: 1\nguardrails:\n  pii: {type: pii, ner_model: en_core_web_trf}\n"
        "providers: {p: {type: openai, base_url: 'http://127.0.0.1:9'}}\n"
        "models: {m: {provider: p, upstream_model: m, guardrails: {input: [pii]}}}\n"
    )
    out = subprocess.run([sys.executable, "-m", "gateway", "serve", "--policy", str(policy),
                          "--port", "0"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 1
    assert "spaCy model 'en_core_web_trf' is not installed" in out.stderr
    check = subprocess.run([sys.executable, "-m", "gateway", "check", str(policy)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 1 and "en_core_web_trf" in check.stderr
