"""Encyclopedic text from a MediaWiki XML dump, read with the standard library.

:func:`wikipedia_articles` reads a (bz2-compressed) ``pages-articles`` dump with
:func:`xml.etree.ElementTree.iterparse` and keeps one plain-text document per
article: pages of the main namespace (``<ns>0</ns>``) that are not redirects,
their wiki markup removed by :func:`strip_wiki_markup`. The named corpus
``"wikipedia"`` of :mod:`.corpus` is gensim's shortened English dump
(``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``).
"""

from __future__ import annotations

import bz2
import html
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

#: Trailing sections that hold lists of links and citations, not prose: an article
#: is cut at the first heading with one of these titles.
TRAILING_SECTIONS = ("see also", "references", "notes", "external links", "further reading",
                     "bibliography", "sources", "footnotes", "citations")
#: Link prefixes whose target is not running text (dropped with their caption).
_DROPPED_LINKS = re.compile(r"^\s*:?\s*(file|image|media|category|wikipedia|wp|template|"
                            r"help|portal|special|wikt|wiktionary|[a-z]{2,3}(-[a-z]+)?)\s*:",
                            re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
_REF = re.compile(r"<ref\b[^>/]*/>|<ref\b[^>]*>.*?(</ref\s*>|$)", re.DOTALL | re.IGNORECASE)
_BLOCK_TAGS = re.compile(r"<(math|gallery|timeline|score|syntaxhighlight|source|pre|imagemap|"
                         r"chem|hiero)\b[^>]*>.*?</\1\s*>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_EXTERNAL = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]+(?:\s+([^\]]*))?\]")
_EMPHASIS = re.compile(r"'{2,}")
_HEADING = re.compile(r"^(=+)\s*(.*?)\s*\1\s*$")
_MAGIC = re.compile(r"__[A-Z]+__")


def _drop_balanced(text: str, opener: str, closer: str) -> str:
    """``text`` without every (possibly nested) ``opener … closer`` span; an unclosed
    opener drops the rest of the text (it is markup up to the end)."""
    out, depth, kept_from = [], 0, 0
    for mark in re.finditer(f"{re.escape(opener)}|{re.escape(closer)}", text):
        if mark.group() == opener:
            if not depth:
                out.append(text[kept_from:mark.start()])
            depth += 1
        elif depth:
            depth -= 1
            if not depth:
                kept_from = mark.end()
    if not depth:
        out.append(text[kept_from:])
    return "".join(out)


def _resolve_links(text: str) -> str:
    """``[[target|label]]`` → label, ``[[target]]`` → target; file, image, category and
    interlanguage links (and their captions, nested links included) dropped."""
    out, i = [], 0
    while True:
        start = text.find("[[", i)
        if start < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:start])
        depth, j = 1, start + 2
        while j < len(text) and depth:
            if text.startswith("[[", j):
                depth, j = depth + 1, j + 2
            elif text.startswith("]]", j):
                depth, j = depth - 1, j + 2
            else:
                j += 1
        inner = text[start + 2:j - 2 if not depth else j]
        if not _DROPPED_LINKS.match(inner):
            shown = _resolve_links(inner).split("|")
            out.append(shown[-1] if len(shown) > 1 and shown[-1].strip() else shown[0])
        i = j


def strip_wiki_markup(text: str) -> str:
    """The running text of an article's wikitext.

    Drops comments, ``<ref>`` citations, templates ``{{…}}`` (nested), tables
    ``{|…|}``, math / gallery blocks, HTML tags, file / image / category /
    interlanguage links, external link targets, bold and italic quotes, list and
    indentation markers, magic words, and everything from the first trailing
    section (:data:`TRAILING_SECTIONS`) on; keeps link labels (``[[a|b]]`` → ``b``)
    and heading titles (as lines of their own). Paragraphs are separated by one
    blank line.

    Parameters
    ----------
    text : str
        MediaWiki markup of one page.

    Returns
    -------
    str
        Plain text ('' when nothing but markup).

    Examples
    --------
    >>> strip_wiki_markup("'''Anarchism''' is a [[political philosophy|philosophy]]"
    ...                   "{{sfn|Smith|{{year}}}}.<ref>Cite</ref>")
    'Anarchism is a philosophy.'
    """
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _BLOCK_TAGS.sub("", text)
    text = _drop_balanced(text, "{{", "}}")
    text = _drop_balanced(text, "{|", "|}")
    text = _resolve_links(text)
    text = _EXTERNAL.sub(lambda m: m.group(1) or "", text)
    text = _TAG.sub("", text)
    text = html.unescape(_MAGIC.sub("", _EMPHASIS.sub("", text))).replace("\xa0", " ")
    paragraphs, lines = [], []
    for raw in text.splitlines():
        line = raw.strip()
        heading = _HEADING.match(line)
        if heading:
            if heading.group(2).strip().lower() in TRAILING_SECTIONS:
                break
            line = heading.group(2).strip()
        elif line.startswith(("|", "!")):
            continue  # a table row left by an unbalanced table
        else:
            line = line.lstrip("*#:;").strip()
        if line:
            lines.append(re.sub(r"[ \t]+", " ", line))
        elif lines:
            paragraphs.append("\n".join(lines))
            lines = []
    if lines:
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs).strip()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def wikipedia_articles(path: str | Path) -> list[str]:
    """The articles of a MediaWiki XML dump as plain-text documents, in file order.

    Keeps pages of the main namespace (``ns`` 0) that are not redirects (no
    ``<redirect>`` element, text not starting with ``#REDIRECT``) and whose text is
    not empty after :func:`strip_wiki_markup`.

    Parameters
    ----------
    path : str or Path
        The dump, bz2-compressed when its name ends in ``.bz2``.

    Raises
    ------
    ValueError
        If the file is not a readable (bz2) MediaWiki XML dump.
    """
    path = Path(path)
    opener = bz2.open if path.suffix == ".bz2" else open
    articles = []
    try:
        with opener(path, "rb") as stream:
            page: dict[str, str | None] = {}
            for event, element in ElementTree.iterparse(stream, events=("end",)):
                name = _local(element.tag)
                if name in ("ns", "text", "title"):
                    page[name] = element.text or ""
                elif name == "redirect":
                    page["redirect"] = ""
                elif name == "page":
                    text = page.get("text") or ""
                    if page.get("ns") == "0" and "redirect" not in page \
                            and not text.lstrip().upper().startswith("#REDIRECT"):
                        plain = strip_wiki_markup(text)
                        if plain:
                            articles.append(plain)
                    page = {}
                    element.clear()
    except (ElementTree.ParseError, OSError, EOFError) as error:
        raise ValueError(f"corpus: cannot read the MediaWiki dump {path} ({error}); "
                         f"expected a (bz2-compressed) pages-articles XML file") from None
    return articles
