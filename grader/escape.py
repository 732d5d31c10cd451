"""Escaping for text that came from a history, one function per place it can land.

Everything a history carries (workflow ids, failure messages, identities,
file names) is the learner's to write, so a crafted history can hold a
carriage return that rewinds a terminal line over a FAIL, an ANSI sequence
that recolours or clears the screen, ``</failure>`` that closes an XML
element early, a ``|`` that splits a markdown table cell, or ``::error::``
that starts a GitHub workflow command. Every renderer passes such text
through the function for its format and never writes it raw.

The shared first step is :func:`visible_controls`: control characters
(C0, DEL, C1) and the Unicode bidirectional overrides become visible
``\\xNN`` / ``\\uNNNN`` escapes, so a reader sees that something odd was
there instead of having it act on their terminal or page.

It sits at the top level, below both its users: the formats, and the
engine's text timeline (:mod:`grader.engine.timeline`), which must not
import the formats.
"""

from __future__ import annotations

import functools
import re

# The patterns are compiled on first use, not at import: every command imports
# this module, and compiling these character classes cost about a millisecond
# of each start-up. Ordinary text never needs them (see visible_controls).


@functools.cache
def _control() -> re.Pattern[str]:
    """C0 controls, DEL, C1 controls, and the bidi embedding/override/isolate
    characters that can make text read differently from how it is stored."""
    return re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


@functools.cache
def _surrogate() -> re.Pattern[str]:
    """Lone surrogates: they cannot be encoded as UTF-8 at all (a history decoded
    with surrogatepass, or a JSON ``\\ud800`` escape, can carry one)."""
    return re.compile("[\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible_controls(text: object, *, keep_newlines: bool = False) -> str:
    """``text`` with every control character shown as an escape instead of acting.

    With ``keep_newlines``, ``\\n`` stays a line break (multi-line output such
    as a JUnit failure body); ``\\r`` is always escaped, since a lone carriage
    return is what lets one line overwrite another on a terminal.
    """
    text = "" if text is None else str(text)
    if text.isprintable():
        # Every character either pattern matches (Cc, Cf, Cs) is unprintable, so
        # there is nothing to escape: the usual case, without a regex.
        return text
    control, surrogate = _control(), _surrogate()
    if keep_newlines:
        parts = text.split("\n")
        return "\n".join(surrogate.sub(_escape_char, control.sub(_escape_char, p)) for p in parts)
    return surrogate.sub(_escape_char, control.sub(_escape_char, text))


def terminal(text: object) -> str:
    """One line of text that is safe to print on a terminal (the table format)."""
    return visible_controls(text)


@functools.cache
def _markdown_special() -> re.Pattern[str]:
    """The characters that can start markup in the middle of a line: emphasis, code,
    links and images (``[``), raw HTML, table cells, strikethrough, entities and
    mentions. An underscore inside a word (``maximum_attempts``) cannot open
    emphasis, so it stays as it is and a raw feedback file stays readable.
    Line-start markup (headings, lists) cannot happen: newlines never survive
    into inline text."""
    return re.compile(r"([\\`*\[\]<>|~&@]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


@functools.cache
def _autolink() -> re.Pattern[str]:
    """GitHub turns bare ``scheme://`` and ``www.`` text into links; a backslash breaks the pattern."""
    return re.compile(r"(?i)(://|\bwww\.)")


def markdown(text: object) -> str:
    """Inline markdown: the text shows literally, in a table cell or a sentence.

    ``@`` is escaped so a crafted name cannot mention (notify) people when the
    report is posted as a pull-request comment, and bare web addresses are
    broken up so they do not become links.
    """
    text = visible_controls(text)
    return _short_markdown(text) if len(text) <= _MEMO_MOST else _markdown(text)


#: Texts up to this long are remembered by :func:`_short_markdown`; longer ones (a learner's
#: hostile 1 MB failure message) are escaped each time, so the memo stays a few megabytes at most.
_MEMO_MOST = 300


def _markdown(text: str) -> str:
    """The work of :func:`markdown`, on text whose control characters are already visible."""
    escaped = _markdown_special().sub(r"\\\1", text)
    return _autolink().sub(lambda m: ":\\/\\/" if m.group(1) == "://" else m.group(1)[:-1] + "\\.", escaped)


#: A class's feedback repeats the same titles, hints and findings thousands of times: two regex
#: passes over each were a tenth of a batch's work.
_short_markdown = functools.lru_cache(maxsize=8192)(_markdown)


def markdown_code(text: object) -> str:
    """Text for an inline code span: control characters visible, backticks unable to close it."""
    body = visible_controls(text)
    fence = "`"
    while fence in body:
        fence += "`"
    pad = " " if body.startswith("`") or body.endswith("`") or not body.strip() else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def workflow_command_data(text: object) -> str:
    """The message part of a GitHub workflow command (after the second ``::``)."""
    text = visible_controls(text, keep_newlines=True)
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def workflow_command_property(text: object) -> str:
    """A property value of a GitHub workflow command (``title=...``)."""
    return workflow_command_data(text).replace(":", "%3A").replace(",", "%2C")


@functools.cache
def _xml_forbidden() -> re.Pattern[str]:
    """Characters XML 1.0 forbids outright (even escaped): most C0 controls,
    surrogates, U+FFFE and U+FFFF."""
    return re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: object, *, keep_newlines: bool = True) -> str:
    """Text that an XML serializer can write as character data or an attribute.

    The serializer (ElementTree) escapes ``<``, ``&`` and quotes itself; this
    makes the characters XML cannot hold at all visible first, so the
    document stays well-formed whatever the history held.
    """
    text = visible_controls(text, keep_newlines=keep_newlines)
    return _xml_forbidden().sub(_escape_char, text)
