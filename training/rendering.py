"""Model replies as sanitised Markdown.

Markdown is rendered with raw HTML disabled, then cleaned with an allowlist (nh3): no
scripts, no attributes but a link's href, so no `hx-*`/`data-hx-*` request gadgets and no
event handlers; images are never rendered (their alt text is kept), which closes the
markdown-image exfiltration channel, reference-style links included; every link shows
its target next to its text, so a learner sees where it goes.
"""

from __future__ import annotations

import html
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li",
    "h3", "h4", "h5", "h6", "a", "span", "table", "thead", "tbody", "tr", "th", "td", "hr",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href"}, "span": {"class"}}
SAFE_SCHEMES = {"http", "https", "mailto"}


def _render_image(renderer: Any, tokens: list[Token], index: int, options: Any, env: Any) -> str:
    token = tokens[index]
    alt = "".join(child.content for child in token.children or [])
    source = token.attrGet("src") or ""
    shown = f"[image not shown: {html.escape(alt)} — {html.escape(str(source))}]"
    return f'<span class="blocked-image">{shown}</span>'


def _render_link_close(
    renderer: Any, tokens: list[Token], index: int, options: Any, env: Any
) -> str:
    # Find the matching link_open to show the target after the text.
    for back in range(index - 1, -1, -1):
        if tokens[back].type == "link_open":
            href = str(tokens[back].attrGet("href") or "")
            return f'</a> <span class="link-target">({html.escape(href)})</span>'
    return "</a>"


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    md.add_render_rule("image", _render_image)
    md.add_render_rule("link_close", _render_link_close)
    # Headings inside a chat bubble are demoted to h3..h6.
    md.add_render_rule(
        "heading_open",
        lambda renderer, tokens, i, options, env: f"<h{min(6, int(tokens[i].tag[1]) + 2)}>",
    )
    md.add_render_rule(
        "heading_close",
        lambda renderer, tokens, i, options, env: f"</h{min(6, int(tokens[i].tag[1]) + 2)}>",
    )
    return md


_MD = _markdown()


def render_reply(text: str) -> str:
    """Safe HTML for a model reply (or any untrusted Markdown)."""
    return nh3.clean(
        _MD.render(text or ""),
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=SAFE_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def prepare_for_page(message: Any) -> None:
    """Set what the page shows of a message: `html` (a reply's safe HTML, its citation
    numbers in order of first use) and `cited` (the passages it cites, under those
    numbers: training/citations.py)."""
    from training.citations import renumbered

    if message.is_from_learner:
        message.html, message.cited = "", []
        return
    text, message.cited = renumbered(message.text, message.citations or [])
    message.html = render_reply(text)


def message_html(message: Any) -> str:
    """One transcript entry as the chat page shows it (used for the end of a stream)."""
    from django.template.loader import render_to_string

    prepare_for_page(message)
    return render_to_string(
        "training/session.html#message", {"message": message, "session": message.session}
    )
