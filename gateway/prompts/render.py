"""A prompt version made ready to render: its templates compiled in Jinja2's sandbox
(`StrictUndefined`), its variables' JSON Schema checked, and every request's variables
validated against that schema before anything is rendered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastjsonschema
import jsonschema
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from gateway.errors import GatewayError, InvalidRequest
from gateway.prompts.config import PromptVersion

DEFAULT_FILTERS = ("default", "d")


class PromptRenderFailed(GatewayError):
    status = 500
    type = "api_error"
    code = "prompt_render_failed"


class PromptDefinitionError(ValueError):
    """A version that cannot be rendered as written (bad template, undeclared variable)."""


def environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(undefined=StrictUndefined, autoescape=False,
                                keep_trailing_newline=True)  # fmt: skip


def used_variables(env: SandboxedEnvironment, source: str) -> tuple[set[str], set[str]]:
    """The variables a template reads from outside (loop and `set` names aside), and
    those it only ever reads through `| default(...)`."""
    tree = env.parse(source)
    read = meta.find_undeclared_variables(tree)
    guarded = {id(f.node) for f in tree.find_all(nodes.Filter) if f.name in DEFAULT_FILTERS}
    bare = {n.name for n in tree.find_all(nodes.Name)
            if n.ctx == "load" and id(n) not in guarded}  # fmt: skip
    return set(read), read - bare


@dataclass(frozen=True)
class CompiledVersion:
    prompt: str
    config: PromptVersion
    templates: tuple[Any, ...]  # jinja2.Template per message
    validator: jsonschema.protocols.Validator
    defaults: dict[str, Any]
    fast_check: Callable[[Any], Any] | None  # fastjsonschema's compiled check, when it fits
    globals: tuple[dict[str, Any], ...]  # each template's globals, merged once

    @property
    def ref(self) -> str:
        return f"{self.prompt}@{self.config.version}"

    def passes(self, values: dict[str, Any]) -> bool:
        """The fast check (compiled code, ~1 us) where the schema allows it; otherwise,
        and to explain a failure, jsonschema's validator (~13 us) decides."""
        if self.fast_check is None:
            return False
        try:
            self.fast_check(values)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    def render(self, variables: dict[str, Any]) -> list[dict[str, Any]]:
        """The version's messages with `variables` filled in; a 400 naming the variable
        when one is missing, undeclared or invalid."""
        values = {**self.defaults, **variables}
        if not self.passes(values):
            errors = sorted(self.validator.iter_errors(values), key=lambda e: list(e.path))
            if errors:
                raise variable_error(self.ref, errors[0])
        out = []
        for message, template, names in zip(self.config.messages, self.templates, self.globals,
                                            strict=True):  # fmt: skip
            try:
                text = render_template(template, {**names, **values})
            except UndefinedError as exc:  # (declared variables are checked above)
                raise InvalidRequest(f"Prompt {self.ref}: {exc.message}",
                                     param="metadata.prompt_variables",
                                     code="invalid_prompt_variables") from None  # fmt: skip
            except SecurityError:
                raise InvalidRequest(
                    f"Prompt {self.ref}: the template tried an unsafe operation",
                    code="invalid_prompt_variables",
                ) from None
            except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
                raise PromptRenderFailed(  # the template's own fault, not the client's
                    f"Prompt {self.ref} failed to render: {type(exc).__name__}: {exc}"
                ) from None
            rendered: dict[str, Any] = {"role": message.role, "content": text}
            if message.name is not None:
                rendered["name"] = message.name
            out.append(rendered)
        return out


def compile_version(prompt: str, version: PromptVersion) -> CompiledVersion:
    """Compile the templates and build the variables' schema; raises
    PromptDefinitionError naming what is wrong."""
    env = environment()
    templates, required = [], set()
    declared = version.variables
    for i, message in enumerate(version.messages):
        try:
            read, optional = used_variables(env, message.content)
            templates.append(env.from_string(message.content))
        except TemplateSyntaxError as exc:
            raise PromptDefinitionError(f"messages[{i}]: template error: {exc.message} "
                                        f"(line {exc.lineno})") from None  # fmt: skip
        undeclared = sorted(read - declared.keys())
        if undeclared:
            raise PromptDefinitionError(f"messages[{i}]: variable {undeclared[0]!r} is used "
                                        "but not declared under variables")  # fmt: skip
        required |= read - optional
    defaults = {k: s["default"] for k, s in declared.items() if "default" in s}
    schema = {
        "type": "object",
        "properties": declared,
        "required": sorted(required - defaults.keys()),
        "additionalProperties": False,
    }
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = ".".join(str(p) for p in list(exc.path)[1:])
        raise PromptDefinitionError(f"variables.{where}: invalid JSON Schema: "
                                    f"{exc.message}") from None  # fmt: skip
    validator = jsonschema.Draft202012Validator(schema)
    fast = None
    if keywords(schema) <= DRAFT_7_KEYWORDS:  # the same meaning in draft 7 and 2020-12
        fast = fastjsonschema.compile(
            {**schema, "$schema": "http://json-schema.org/draft-07/schema#"}
        )
    names = tuple(dict(t.globals) for t in templates)
    return CompiledVersion(prompt, version, tuple(templates), validator, defaults, fast, names)


def render_template(template: Template, context: dict[str, Any]) -> str:
    """`template.render`, less its per-call merge of the globals (a ChainMap copied into a
    dict: half of a short template's ~7 us): the context comes merged already."""
    env = template.environment
    return env.concat(template.root_render_func(template.new_context(context, shared=True)))


DRAFT_7_KEYWORDS = frozenset({
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "minItems", "maxItems", "uniqueItems", "minLength", "maxLength", "pattern", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minProperties",
    "maxProperties", "default", "description", "title", "examples",
})  # fmt: skip


def keywords(schema: Any) -> set[str]:
    """Every keyword a schema uses, at any depth (property names aside)."""
    found: set[str] = set()
    if isinstance(schema, dict):
        for key, value in schema.items():
            found.add(key)
            children = (
                value.values() if key == "properties" and isinstance(value, dict) else [value]
            )
            for child in children:
                found |= keywords(child)
    elif isinstance(schema, list):
        for item in schema:
            found |= keywords(item)
    return found


REASONS = {
    "type": lambda e: f"must be of type {e.validator_value}",
    "maxLength": lambda e: f"is longer than {e.validator_value} characters",
    "minLength": lambda e: f"is shorter than {e.validator_value} characters",
    "enum": lambda e: "must be one of " + ", ".join(map(str, e.validator_value)),
    "const": lambda e: f"must be {e.validator_value!r}",
    "pattern": lambda e: f"does not match the pattern {e.validator_value!r}",
    "minimum": lambda e: f"must be at least {e.validator_value}",
    "maximum": lambda e: f"must be at most {e.validator_value}",
    "exclusiveMinimum": lambda e: f"must be above {e.validator_value}",
    "exclusiveMaximum": lambda e: f"must be below {e.validator_value}",
    "format": lambda e: f"must be a valid {e.validator_value}",
    "minItems": lambda e: f"must have at least {e.validator_value} items",
    "maxItems": lambda e: f"must have at most {e.validator_value} items",
}


def variable_error(ref: str, error: jsonschema.ValidationError) -> InvalidRequest:
    """One schema error as a 400 naming the variable (the value itself is not echoed:
    it may be long, or personal)."""
    path = [str(p) for p in error.absolute_path]
    given: dict[str, Any] = error.instance if isinstance(error.instance, dict) else {}
    if error.validator == "required":
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = next(n for n in required if n not in given)
        name, reason = missing, "is missing"
    elif error.validator == "additionalProperties":
        schema = error.schema if isinstance(error.schema, dict) else {}
        extra = sorted(set(given) - set(schema.get("properties", {})))
        name, reason = extra[0], "is not declared by the prompt"
    else:
        name = ".".join(path) or "variables"
        explain = REASONS.get(str(error.validator))
        reason = explain(error) if explain else f"fails the schema's {error.validator!r} rule"
    return InvalidRequest(f"Prompt variable {name!r} {reason} ({ref}).",
                          param=f"metadata.prompt_variables.{name}",
                          code="invalid_prompt_variables")  # fmt: skip
