"""Running a model's guardrails: on the request, on a whole response, and on a stream
as it flows (holding back only the tail a scanner still needs)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.guardrails import Guardrail
from gateway.guardrails.deltas import rewrite_deltas
from gateway.guardrails.restore import RestoringStream, restore_completion
from gateway.guardrails.scanners import Finding
from gateway.providers.base import ChunkStream, Completion
from gateway.validation import listed


class GuardrailBlocked(GatewayError):
    status = 400
    type = "invalid_request_error"

    def __init__(self, guardrail: str, stage: str, what: str) -> None:
        # never echo the matched text: name the guardrail and the kind of finding only
        super().__init__(f"The {stage} was blocked by guardrail '{guardrail}' ({what}).",
                         code=f"guardrail_{guardrail}")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verdict:
    guardrail: str
    stage: str  # input | output
    action: str  # pass | block | redact | warn | log | error
    entities: dict[str, int]
    latency_ms: float
    started_unix: float = 0.0


SEVERITY = {"pass": 0, "log": 1, "warn": 2, "redact": 3, "error": 4, "block": 5}


def summarize(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    """One entry per guardrail and stage (a stream is scanned many times): the most
    severe action, entity counts summed, time summed."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for v in verdicts:
        entry = merged.setdefault((v.guardrail, v.stage), {
            "guardrail": v.guardrail, "stage": v.stage, "action": "pass", "entities": {}, "ms": 0.0,
            "start": v.started_unix,
        })  # fmt: skip
        if SEVERITY[v.action] > SEVERITY[entry["action"]]:
            entry["action"] = v.action
        for entity, n in v.entities.items():
            entry["entities"][entity] = entry["entities"].get(entity, 0) + n
        entry["ms"] = round(entry["ms"] + v.latency_ms, 3)
    return list(merged.values())


def strongest(verdicts: list[Verdict]) -> str | None:
    return max((v.action for v in verdicts), key=SEVERITY.__getitem__, default=None)


def redact(text: str, findings: list[Finding], restore: dict[str, str] | None = None) -> str:
    """Typed placeholders; numbered and remembered in `restore` when reversible (the same
    value always gets the same placeholder within a request)."""
    out, last = [], 0
    known = {original: token for token, original in (restore or {}).items()}
    for f in sorted(findings, key=lambda f: f.start):
        if f.start >= last:
            placeholder = f"<{f.entity}>"
            if restore is not None:
                original = text[f.start : f.end]
                placeholder = known.get(original) or f"<{f.entity}_{len(restore) + 1}>"
                restore[placeholder], known[original] = original, placeholder
            out += [text[last : f.start], placeholder]
            last = f.end
    return "".join(out) + text[last:]


def counts(findings: list[Finding]) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in findings:
        out[f.entity] = out.get(f.entity, 0) + 1
    return out


def text_slots(body: dict[str, Any]) -> Iterator[tuple[dict[str, Any] | list[Any], Any]]:
    """(container, key) for every piece of prompt text in a request."""
    for message in listed(body.get("messages")):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield message, "content"
        elif isinstance(content, list):
            yield from (
                (part, "text")
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            yield body, key
        elif isinstance(value, list):
            yield from ((value, i) for i, v in enumerate(value) if isinstance(v, str))


async def scan_slots(guardrail: Guardrail, slots: list[tuple[Any, Any]], stage: str,
               ctx: RequestContext) -> list[Finding]:  # fmt: skip
    """Apply one guardrail to text slots in place; record its verdict; raise on block."""
    started, started_unix = time.perf_counter(), time.time()
    found: list[Finding] = []
    try:
        violation = guardrail.check_request(ctx.request_body or {}) if stage == "input" else None
        request = ctx.request_body
        per_slot = [(slot, await guardrail.scan(slot[0][slot[1]], request)) for slot in slots]
    except Exception:  # a failing scanner or webhook must not become a 500: open or closed
        elapsed = (time.perf_counter() - started) * 1000
        ctx.verdicts.append(Verdict(guardrail.name, stage, "error", {}, elapsed, started_unix))
        if guardrail.on_error == "closed":
            raise GuardrailBlocked(guardrail.name, stage, "scanner error") from None
        return []
    for _, findings in per_slot:
        found += findings
    if violation is not None:
        found.append(Finding(0, 0, "LIMIT"))
    action = guardrail.action if found else "pass"
    elapsed = (time.perf_counter() - started) * 1000
    ctx.verdicts.append(
        Verdict(guardrail.name, stage, action, counts(found), elapsed, started_unix)
    )
    if not found:
        return []
    if action == "block" or (action == "redact" and violation is not None):
        raise GuardrailBlocked(guardrail.name, stage, violation or ", ".join(sorted(counts(found))))
    if action == "redact":
        for (container, key), findings in per_slot:
            if findings:
                restore = ctx.restore if guardrail.reversible and stage == "input" else None
                container[key] = redact(container[key], findings, restore)
    elif action == "warn":
        ctx.warnings.append(guardrail.name)
    return found


async def guard_input(
    ctx: RequestContext, body: dict[str, Any], chain: list[Guardrail]
) -> dict[str, Any]:
    """The request body the upstream may see (a redacted copy when anything was redacted)."""
    if not chain:
        return body
    body = orjson.loads(orjson.dumps(body))  # redaction edits a copy, never the caller's
    slots = prompts = list(text_slots(body))
    if not all(g.judges_instructions for g in chain):
        instructions = {id(s[0]) for s in instruction_slots(body)}
        prompts = [s for s in slots if id(s[0]) not in instructions]
    for guardrail in chain:
        await scan_slots(
            guardrail, slots if guardrail.judges_instructions else prompts, "input", ctx
        )
        cap = getattr(guardrail, "cap_output", None)  # limits: no request goes unbounded
        if cap is not None:
            cap(body)
    return body


def instruction_slots(body: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """The text slots of the application's own system and developer messages."""
    for message in listed(body.get("messages")):
        if isinstance(message, dict) and message.get("role") in ("system", "developer"):
            yield from text_slots({"messages": [message]})


def completion_slots(doc: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(container, key) for the text of every choice of a whole response."""
    slots: list[tuple[Any, Any]] = []
    for choice in doc.get("choices") or ():
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            slots.append((message, "content"))
        elif isinstance(choice.get("text"), str):
            slots.append((choice, "text"))
    return slots


async def guard_completion(
    ctx: RequestContext, completion: Completion, chain: list[Guardrail]
) -> Completion:
    doc = orjson.loads(completion.body)
    slots = completion_slots(doc)
    changed = False
    for guardrail in chain:
        changed |= (
            bool(await scan_slots(guardrail, slots, "output", ctx)) and guardrail.action == "redact"
        )
    return Completion(orjson.dumps(doc), completion.headers) if changed else completion


class GuardedStream:
    """A ChunkStream whose content deltas pass through the output chain as they flow."""

    def __init__(self, ctx: RequestContext, inner: ChunkStream, chain: list[Guardrail]) -> None:
        self.ctx, self.inner, self.chain = ctx, inner, chain
        self.headers = inner.headers
        self.pending: dict[int, str] = {}  # per choice: text not yet sent

    def __aiter__(self) -> AsyncIterator[bytes]:
        return rewrite_deltas(self.inner, self.rewrite)

    async def rewrite(self, index: int, content: str, final: bool) -> str:
        ready, self.pending[index] = await self.release(
            self.pending.get(index, "") + content, final
        )
        return ready

    async def release(self, text: str, final: bool) -> tuple[str, str]:
        """Split pending text into what may go now (scanned, redacted) and what waits."""
        cut = len(text) if final else min([len(text), *(g.holdback(text) for g in self.chain)])
        if 0 < cut < len(text):
            cut = await self.before_crossing(text, cut)
        slot = [[text[:cut]]]
        if not cut:
            return "", text
        for guardrail in self.chain:
            await scan_slots(guardrail, [(slot[0], 0)], "output", self.ctx)
        return slot[0][0], text[cut:]

    async def before_crossing(self, text: str, cut: int) -> int:
        """Move the cut before any match that straddles it (an entity still being written)."""
        for guardrail in self.chain:
            try:
                findings = await guardrail.scan(text, self.ctx.request_body)
            except Exception:  # scan_slots applies on_error when it scans the released text
                continue
            crossing = [f.start for f in findings if f.start < cut < f.end]
            cut = min([cut, *crossing])
        return cut

    async def aclose(self) -> None:
        await self.inner.aclose()


async def guard_output(ctx: RequestContext, result: Completion | ChunkStream,
                 chain: list[Guardrail]) -> Completion | ChunkStream:  # fmt: skip
    """The output chain, then (when input was redacted reversibly) the originals back."""
    if chain:
        if isinstance(result, Completion):
            result = await guard_completion(ctx, result, chain)
        else:
            result = GuardedStream(ctx, result, chain)
    if not ctx.restore:
        return result
    if isinstance(result, Completion):
        return restore_completion(result, ctx.restore)
    return RestoringStream(result, ctx.restore)
