"""The rule table: every finding's code, its default severity and what it means (docs/lint.md lists it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    severity: Severity
    summary: str


# One row per rule: a table, so its lines share a shape by design (`duplicates` lists it).
RULES: dict[str, Rule] = {
    rule.code: rule
    for rule in (
        Rule("MT001", "error", "line is not valid UTF-8"),
        Rule("MT002", "error", "line is not valid JSON (NaN and Infinity are not JSON)"),
        Rule("MT003", "error", "line is not a JSON object"),
        Rule("MT004", "error", "the file cannot be read (missing, a directory, no permission)"),
        Rule("MT005", "error", "the file holds no conversation (empty, or only blank lines)"),
        Rule("MT006", "error", "a key appears twice in one JSON object (loaders keep one silently)"),
        Rule("MT007", "error", "JSON nested deeper than 254 levels (the most the linter checks)"),
        Rule("MT101", "error", "a required field is missing (`messages`, `role`, `content`)"),
        Rule("MT102", "error", "a field has the wrong type"),
        Rule("MT103", "error", "unknown role (allowed: system, user, assistant, tool)"),
        Rule("MT104", "error", "role is not lower case"),
        Rule("MT105", "error", "content is empty or only whitespace"),
        Rule("MT106", "error", "weight is not 0 or 1"),
        Rule("MT107", "error", "unknown field in a message"),
        Rule("MT108", "error", "messages is an empty list"),
        Rule("MT109", "error", "a content part that is neither a text part nor an image_url part"),
        Rule("MT110", "error", "`tool_calls` is an empty list"),
        Rule("MT111", "error", "tool call `arguments` is not a JSON object (nor a string holding one)"),
        Rule("MT112", "error", "malformed tool call (missing `id`, `type`, `function.name` or `function.arguments`)"),
        Rule("MT113", "error", "malformed `tools` entry (missing `type` or `function.name`)"),
        Rule(
            "MT114",
            "error",
            "a field this role may not have (`tool_calls`/`reasoning` off assistant, `tool_call_id` off tool)",
        ),
        Rule("MT115", "error", "assistant message with neither content nor tool calls"),
        Rule("MT116", "error", "both `reasoning` and `reasoning_content` on one message"),
        Rule("MT117", "error", "reasoning is empty or only whitespace"),
        Rule("MT118", "error", "an image in a message that is not a user message"),
        Rule("MT119", "error", "an image URL that is not a JPEG/PNG/WEBP base64 data URL, an http(s) URL or a path"),
        Rule("MT120", "error", "an image file that does not exist (paths are relative to the JSONL file)"),
        Rule("MT121", "error", "an image larger than 10 MB"),
        Rule("MT122", "error", "more than 10 images in one conversation"),
        Rule("MT123", "error", "an image given to a text-only model (one without an image processor)"),
        Rule("MT201", "error", "the first message is neither system nor user"),
        Rule("MT202", "error", "a system message that is not the first message"),
        Rule(
            "MT203",
            "error",
            "turns out of order (user turns and assistant answers alternate; tool results "
            "are answered by the assistant)",
        ),
        Rule("MT204", "error", "no assistant message"),
        Rule("MT205", "error", "tool message without `tool_call_id`, or answering no call of the preceding turn"),
        Rule("MT206", "error", "a tool call that no tool message answers"),
        Rule("MT207", "error", "duplicate tool call id in a conversation"),
        Rule("MT208", "error", "a called function that is not among the row's `tools`"),
        Rule("MT209", "error", "tool message first, or right after a user or system message"),
        Rule("MT301", "warning", "the conversation ends with a user turn or tool results (nothing answers them)"),
        Rule("MT302", "warning", "content contains a chat-template control string (e.g. <|im_end|>, [INST])"),
        Rule("MT303", "warning", "exact duplicate of an earlier conversation in the file"),
        Rule("MT304", "warning", "blank line"),
        Rule("MT305", "warning", "a text holds a NUL character (\\u0000)"),
        Rule(
            "MT306",
            "warning",
            "with --tokenizer and --sequence-len: assistant turns `overflow: split` would lose "
            "(a turn that cannot fit with its context)",
        ),
        Rule("MT401", "error", "a preference output that is not exactly one assistant message"),
        Rule("MT402", "error", "a preference prompt that ends with an assistant message"),
        Rule("MT403", "error", "a preference prompt without a user message"),
        Rule("MT404", "error", "chosen and rejected are the same message"),
        Rule("MT405", "error", "a prompt-less (implicit) pair whose conversations differ before their last message"),
        Rule("MT406", "error", "a file that mixes conversation and preference lines"),
        # --compat hosted: the hosted API's clients, together 3.1.1 and 2.14.0 (`lint.hosted`), alone
        Rule("HS101", "error", "a top-level field beside the format's own (`tools` is allowed beside `messages`)"),
        Rule("HS102", "error", "a role other than system, user, assistant, tool"),
        Rule(
            "HS103",
            "error",
            "a content that is neither a string nor a list of text and image parts, or a "
            "conversation that mixes the two",
        ),
        Rule("HS106", "error", "no sample in the file"),
        Rule("HS107", "error", "a line in no hosted format, in two, or in another format than the first line"),
        Rule(
            "HS108",
            "error",
            "a malformed preference line (`input` with messages not ending with the assistant; "
            "one assistant message with content or tool calls in each output)",
        ),
        Rule("HS109", "error", "a file larger than 50.1 GiB"),
        Rule("HS110", "error", "a file name that does not end in `.jsonl`"),
        Rule("HS111", "error", "a line that is not UTF-8"),
        Rule("HS112", "error", "a line that Python's json module cannot parse"),
        Rule("HS113", "error", "a line that is not a JSON object"),
        Rule("HS114", "error", "a blank line"),
        Rule(
            "HS115",
            "error",
            "messages not a non-empty list of objects with a role and a content (an assistant "
            "may have tool_calls instead)",
        ),
        Rule("HS116", "error", "a weight that is not the integer 0 or 1"),
        Rule("HS117", "error", "a conversation without an assistant message"),
        Rule(
            "HS118",
            "error",
            "an image the hosted API refuses (not in a user message, not a JPEG/PNG/WEBP data "
            "URL, over 10 MB, more than 10, or on a message with weight 1)",
        ),
        # --compat openai: OpenAI's fine-tuning format checks and vision fine-tuning limits
        Rule("OA101", "error", "a message key outside OpenAI's format (`reasoning`, `reasoning_content`, ...)"),
        Rule("OA102", "error", "a weight on a message that is not an assistant message"),
        Rule("OA103", "error", "fewer than 10 examples in the file"),
        Rule("OA104", "error", "images in a message that is not a user message"),
        Rule("OA105", "error", "more than 64 images in one example"),
        Rule("OA106", "error", "an image larger than 10 MB"),
        Rule("OA107", "error", "more than 50,000 examples with images"),
    )
}


def matches(code: str, patterns: frozenset[str]) -> bool:
    """ruff-style selection: a pattern selects a code it prefixes ('MT3' selects MT301..MT304)."""
    return any(code.startswith(p) for p in patterns)
