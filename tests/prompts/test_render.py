"""Rendering in Jinja2's sandbox with StrictUndefined, variables validated against the
version's JSON Schema first: every error path is a 400 naming the variable."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import InvalidRequest
from gateway.prompts.config import PromptVersion
from gateway.prompts.render import PromptDefinitionError, compile_version


def version(content: str, variables: dict[str, Any], system: str | None = None) -> PromptVersion:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": content}
    ]
    return PromptVersion.model_validate(
        {"version": 1, "messages": messages, "variables": variables, "model": "chat"}
    )


SUPPORT = version(
    "{{ question }}",
    {
        "product": {"type": "string"},
        "question": {"type": "string", "maxLength": 20},
        "language": {"type": "string", "enum": ["English", "French"]},
        "count": {"type": "integer", "minimum": 1, "maximum": 3},
        "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
    },
    system="Agent for {{ product }} in {{ language | default('English') }}. {{ count | default(1) }} {{ code | default('ABC') }}",
)


def test_renders_the_messages_with_defaults() -> None:
    compiled = compile_version("support", SUPPORT)
    out = compiled.render({"product": "Acme", "question": "Where?"})
    assert out == [
        {"role": "system", "content": "Agent for Acme in English. 1 ABC"},
        {"role": "user", "content": "Where?"},
    ]
    out = compiled.render({"product": "Acme", "question": "Où?", "language": "French", "count": 2})
    assert out[0]["content"] == "Agent for Acme in French. 2 ABC"


@pytest.mark.parametrize(
    ("variables", "name", "words"),
    [
        ({"question": "q"}, "product", "is missing"),
        ({"product": "A"}, "question", "is missing"),
        ({"product": 3, "question": "q"}, "product", "must be of type string"),
        ({"product": "A", "question": "x" * 21}, "question", "longer than 20"),
        (
            {"product": "A", "question": "q", "language": "German"},
            "language",
            "one of English, French",
        ),
        ({"product": "A", "question": "q", "count": 0}, "count", "at least 1"),
        ({"product": "A", "question": "q", "count": 4}, "count", "at most 3"),
        ({"product": "A", "question": "q", "count": 1.5}, "count", "of type integer"),
        ({"product": "A", "question": "q", "code": "abc"}, "code", "pattern"),
        ({"product": "A", "question": "q", "tone": "x"}, "tone", "is not declared"),
    ],
)
def test_each_schema_error_is_a_400_naming_the_variable(
    variables: dict[str, Any], name: str, words: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        compile_version("support", SUPPORT).render(variables)
    err = caught.value
    assert err.status == 400
    assert err.param == f"metadata.prompt_variables.{name}"
    assert err.code == "invalid_prompt_variables"
    assert f"'{name}'" in err.message and words in err.message
    assert "x" * 21 not in err.message  # the value is not echoed


def test_nested_schema_errors_name_the_path() -> None:
    v = version(
        "{{ order.id }}", {"order": {"type": "object", "properties": {"id": {"type": "integer"}}}}
    )
    with pytest.raises(InvalidRequest) as caught:
        compile_version("p", v).render({"order": {"id": "x"}})
    assert caught.value.param == "metadata.prompt_variables.order.id"


def test_a_schema_default_fills_a_missing_variable() -> None:
    v = version("Hi {{ name }}", {"name": {"type": "string", "default": "there"}})
    assert compile_version("p", v).render({})[0]["content"] == "Hi there"


def test_the_sandbox_refuses_unsafe_attribute_access() -> None:
    v = version("{{ name.__class__.__mro__ }}", {"name": {"type": "string"}})
    with pytest.raises(InvalidRequest):
        compile_version("p", v).render({"name": "x"})


def test_loop_variables_are_not_prompt_variables() -> None:
    v = version("{% for item in items %}- {{ item }}\n{% endfor %}", {"items": {"type": "array"}})
    assert compile_version("p", v).render({"items": ["a", "b"]})[0]["content"] == "- a\n- b\n"


@pytest.mark.parametrize(
    ("content", "variables", "words"),
    [
        ("{{ undeclared }}", {}, "'undeclared' is used but not declared"),
        ("{{ name ", {"name": {"type": "string"}}, "template error"),
        ("{{ name }}", {"name": {"type": "no-such-type"}}, "invalid JSON Schema"),
    ],
)
def test_a_version_that_cannot_render_is_a_definition_error(
    content: str, variables: dict[str, Any], words: str
) -> None:
    with pytest.raises(PromptDefinitionError, match=words):
        compile_version("p", version(content, variables))


def test_draft_2020_keywords_are_enforced_without_the_fast_check() -> None:
    """The compiled check (draft 7) is used only where the schema means the same in both
    drafts; `prefixItems` is 2020-12's, so jsonschema alone decides."""
    assert compile_version("support", SUPPORT).fast_check is not None
    v = version("{{ pair }}", {"pair": {"type": "array", "prefixItems": [{"type": "integer"}]}})
    compiled = compile_version("p", v)
    assert compiled.fast_check is None
    assert compiled.render({"pair": [1, "x"]})[0]["content"] == "[1, 'x']"
    with pytest.raises(InvalidRequest) as caught:
        compiled.render({"pair": ["x"]})
    assert caught.value.param == "metadata.prompt_variables.pair.0"


def test_a_template_that_fails_at_render_is_a_500_naming_the_version() -> None:
    from gateway.prompts.render import PromptRenderFailed

    v = version("{{ count + 'x' }} {% for i in range(2) %}{{ i }}{% endfor %}",
                {"count": {"type": "integer"}})  # fmt: skip
    with pytest.raises(PromptRenderFailed) as caught:
        compile_version("p", v).render({"count": 1})
    assert caught.value.status == 500 and "p@1 failed to render: TypeError" in caught.value.message
    ok = version("{% for i in range(n) %}{{ i }}{% endfor %}", {"n": {"type": "integer"}})
    assert compile_version("p", ok).render({"n": 3})[0]["content"] == "012"  # globals kept
