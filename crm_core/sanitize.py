"""The one place that cleans text a visitor, editor or import provides.

Only this module imports bleach, so swapping it for nh3 touches one file.
"""

import re
import unicodedata

import bleach

RICH_TEXT_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "u", "p", "br", "ul", "ol", "li", "blockquote", "code", "pre"}
)
RICH_TEXT_ATTRIBUTES = {"a": ["href", "title"]}
RICH_TEXT_PROTOCOLS = frozenset({"http", "https", "mailto", "tel"})

# C0/C1 control characters except tab and newline, and unpaired surrogates.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_SPACES = re.compile(r"\s+")


def plain_text(value, *, multiline=False):
    """Return ``value`` as plain text: no tags, no control characters, NFC.

    Single-line values (names, cities) also have runs of white space folded
    into one space. Markup is removed rather than escaped, so "<b>Ann</b>"
    is stored as "Ann"; templates escape whatever remains when rendering.
    """
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    text = _CONTROL.sub("", text)
    # Until nothing changes: unescaping what bleach kept can make a new tag
    # ("<b></b>&lt;img&gt;" gives "<img>"), which the next round strips.
    while "<" in text:
        stripped = bleach.clean(text, tags=set(), attributes={}, strip=True, strip_comments=True)
        # bleach escapes what it keeps; plain text is stored unescaped.
        stripped = stripped.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        if stripped == text:
            break
        text = stripped
    if multiline:
        return "\n".join(line.rstrip() for line in text.strip().splitlines())
    return _SPACES.sub(" ", text).strip()


def has_markup(value):
    """Whether ``plain_text`` would strip tags or comments from ``value``.

    Text shown as typed ("Tick <your name>") but stored through
    ``plain_text`` ("Tick") would not be what the visitor read; "a < b" and
    "<3" are text, not markup.
    """
    text = str(value or "")
    return "<" in text and plain_text(text, multiline=True).count("<") < text.count("<")


def rich_text(value):
    """Return ``value`` as HTML safe to render: a small allowlist of tags."""
    if not value:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    text = _CONTROL.sub("", text)
    return bleach.clean(
        text,
        tags=RICH_TEXT_TAGS,
        attributes=RICH_TEXT_ATTRIBUTES,
        protocols=RICH_TEXT_PROTOCOLS,
        strip=True,
        strip_comments=True,
    )
