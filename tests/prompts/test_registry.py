"""Prompt files in the policy directory: validation with file and line, the lock file
that makes released versions immutable, cross-references with the policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.policy.loader import PolicyError, load_policy
from gateway.prompts.lock import read_lock
from tests.prompts.conftest import PROMPT, PolicyDir


def test_first_load_locks_every_version_and_check_does_not(policy_dir: PolicyDir) -> None:
    root = policy_dir()
    lock = root / "prompts" / "prompts.lock"
    loaded = load_policy(root)  # as `gateway check` does: nothing written
    assert not lock.exists()
    assert set(loaded.prompts.unlocked["support-reply"]) == {3, 4}
    load_policy(root, lock=True)
    assert set(read_lock(lock)["support-reply"]) == {3, 4}
    assert load_policy(root).prompts.unlocked == {}


def test_editing_a_released_version_names_the_file_and_version(policy_dir: PolicyDir) -> None:
    root = policy_dir()
    load_policy(root, lock=True)
    path = root / "prompts" / "support-reply.yaml"
    path.write_text(PROMPT.replace("Answer in", "Reply in"))
    with pytest.raises(PolicyError) as caught:
        load_policy(root, lock=True)
    (issue,) = caught.value.issues
    assert issue.file == str(path) and issue.path == "versions[0]"
    assert issue.line == PROMPT.splitlines().index("  - version: 3") + 1
    assert "support-reply version 3 was changed" in issue.message
    assert "add version 5 instead" in issue.message


def test_layout_changes_are_not_edits(policy_dir: PolicyDir) -> None:
    root = policy_dir()
    load_policy(root, lock=True)
    path = root / "prompts" / "support-reply.yaml"
    path.write_text(
        "# a comment\n"
        + PROMPT.replace(
            "params: {temperature: 0.2, max_tokens: 400}",
            "params:\n      max_tokens: 400\n      temperature: 0.2",
        )
    )
    load_policy(root, lock=True)


def test_adding_a_version_adds_it_to_the_lock(policy_dir: PolicyDir) -> None:
    root = policy_dir()
    load_policy(root, lock=True)
    path = root / "prompts" / "support-reply.yaml"
    text = PROMPT.replace(
        "overridable:",
        """  - version: 5
    messages:
      - {role: user, content: "{{ question }}"}
    variables: {question: {type: string}}
    model: chat
overridable:""",
    )
    path.write_text(text)
    loaded = load_policy(root, lock=True)
    assert loaded.prompts.prompts["support-reply"].latest.version == 5
    assert set(read_lock(root / "prompts" / "prompts.lock")["support-reply"]) == {3, 4, 5}


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        ("model: small", "model: nope", "versions[1].model", "unknown model 'nope'"),
        ("staging: 4", "staging: 9", "labels.staging", "points at version 9"),
        ("staging: 4", "latest: 4", "labels.latest", "reserved"),
        ("  - version: 4", "  - version: 3", "versions[1].version", "version 3 is defined twice"),
        (
            'content: "{{ question }}"}\n    variables:\n      product: {type: string}\n      question: {type: string, maxLength: 4000}\n    model: small',
            'content: "{{ question }} {{ mood }}"}\n    variables:\n      product: {type: string}\n      question: {type: string, maxLength: 4000}\n    model: small',
            "versions[1]",
            "'mood' is used but not declared",
        ),
        ("temperature: 0.5,", "stream: true,", "versions[1].params", "'stream' is not a parameter"),
        ("name: support-reply", "name: support reply", "name", "String should match"),
        (
            "max_tokens: 300}",
            "max_tokens: 300}\n    colour: red",
            "versions[1].colour",
            "unknown key",
        ),
    ],
)
def test_prompt_file_errors_name_file_line_and_key(
    policy_dir: PolicyDir, old: str, new: str, path: str, words: str
) -> None:
    assert old in PROMPT
    root = policy_dir(experiment=False, prompt=PROMPT.replace(old, new))
    with pytest.raises(PolicyError) as caught:
        load_policy(root)
    issue = next(i for i in caught.value.issues if words in i.message)
    assert issue.file.endswith("support-reply.yaml") and issue.line is not None
    assert issue.path == path


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        (
            "prompt: support-reply",
            "prompt: nope",
            "experiments.reply-tone.prompt",
            "unknown prompt",
        ),
        (
            '{"3": 0.5, "4": 0.5}',
            '{"3": 0.5, "7": 0.5}',
            "experiments.reply-tone.arms.7",
            "neither a version",
        ),
        (
            "metric: resolved",
            "metric: nope",
            "experiments.reply-tone.metric",
            "unknown feedback metric",
        ),
    ],
)
def test_experiment_errors_name_the_policy_key(
    policy_dir: PolicyDir, old: str, new: str, path: str, words: str
) -> None:
    root = policy_dir()
    text = (root / "policy.yaml").read_text()
    (root / "policy.yaml").write_text(text.replace(old, new))
    with pytest.raises(PolicyError) as caught:
        load_policy(root)
    assert any(i.path == path and words in i.message for i in caught.value.issues), (
        caught.value.issues
    )


def test_thompson_needs_a_numeric_metric_and_feedback_needs_the_log(policy_dir: PolicyDir) -> None:
    root = policy_dir()
    text = (root / "policy.yaml").read_text()
    (root / "policy.yaml").write_text(
        text.replace("metric: resolved", "metric: tone").replace(
            "allocation: fixed", "allocation: thompson"
        )
    )
    with pytest.raises(PolicyError, match="thompson needs a boolean or float metric"):
        load_policy(root)
    (root / "policy.yaml").write_text(
        text.replace("telemetry:\n  duckdb:", "telemetry:\n  otel: true\n  #")
    )
    with pytest.raises(PolicyError, match=r"set telemetry\.duckdb"):
        load_policy(root)


def test_a_label_may_name_an_experiment_on_its_prompt(policy_dir: PolicyDir) -> None:
    root = policy_dir(prompt=PROMPT.replace("staging: 4", "staging: 4, canary: reply-tone"))
    assert load_policy(root).prompts.prompts["support-reply"].labels["canary"] == "reply-tone"
    root = policy_dir(prompt=PROMPT.replace("staging: 4", "staging: 4, canary: other"))
    with pytest.raises(PolicyError, match="no experiment 'other'"):
        load_policy(root)


def test_a_one_file_policy_reads_prompts_beside_it(policy_dir: PolicyDir, tmp_path: Path) -> None:
    root = policy_dir()
    loaded = load_policy(root / "policy.yaml")
    assert "support-reply" in loaded.prompts.prompts
