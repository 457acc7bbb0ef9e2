"""The ``"wikipedia"`` corpus: MediaWiki XML read with the standard library, markup removed."""

from __future__ import annotations

import bz2
import re

import pytest

from rdgap.validation.corpus import NAMED_CORPORA, load_documents
from rdgap.validation.wikipedia import strip_wiki_markup, wikipedia_articles

SAMPLE = """<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10">
  <siteinfo><sitename>Wikipedia</sitename></siteinfo>
  <page>
    <title>Alpha</title><ns>0</ns><id>1</id>
    <revision><id>5</id><text xml:space="preserve">{{Infobox thing|name={{nowrap|Alpha}}|x=1}}
'''Alpha''' is the ''first'' [[Greek alphabet|letter]] of the [[alphabet]].&lt;ref name="a"&gt;Smith, p. 3&lt;/ref&gt; It is old.&lt;ref name="a"/&gt;
&lt;!-- a hidden comment --&gt;
[[File:Alpha.svg|thumb|An [[uppercase]] alpha]]
== History ==
* It came from [http://example.org the Phoenicians].
{| class="wikitable"
| cell || cell
|}
It was 1&amp;nbsp;letter.&lt;br /&gt;

== See also ==
* [[Beta]]
[[Category:Letters]]
[[de:Alpha]]</text></revision>
  </page>
  <page>
    <title>AlphaRedirect</title><ns>0</ns><id>2</id><redirect title="Alpha" />
    <revision><id>6</id><text xml:space="preserve">#REDIRECT [[Alpha]]</text></revision>
  </page>
  <page>
    <title>Wikipedia:About</title><ns>4</ns><id>3</id>
    <revision><id>7</id><text xml:space="preserve">Project page text.</text></revision>
  </page>
  <page>
    <title>Empty</title><ns>0</ns><id>4</id>
    <revision><id>8</id><text xml:space="preserve">{{stub}}</text></revision>
  </page>
  <page>
    <title>Gamma</title><ns>0</ns><id>9</id>
    <revision><id>9</id><text xml:space="preserve">'''Gamma''' is third.</text></revision>
  </page>
</mediawiki>
"""

#: Markup that must never survive :func:`strip_wiki_markup`.
MARKUP = (r"\{\{", r"\}\}", r"\[\[", r"\]\]", r"''", r"<ref", r"</?[a-z]+[ />]", r"\{\|",
          r"^=+[^=\n]*=+ *$", r"&nbsp;", r"&amp;", r"\[https?:", r"Category:", r"File:", r"thumb\|")


def _markup_left(text: str) -> list[str]:
    return [p for p in MARKUP if re.search(p, text, re.MULTILINE)]


def test_markup_is_stripped_to_running_text():
    text = strip_wiki_markup(
        "{{Infobox|a={{b|c}}}}'''Bold''' and ''italic'' [[a|b]] [[c]].<ref>x</ref> "
        "<!-- gone --><small>small</small> [http://x.org site] [http://y.org]\n"
        "== Heading ==\n* item\n#: sub item\n{|\n|cell\n|}\n[[Image:x.png|thumb|a [[d]] e]]\n"
        "__NOTOC__[[Category:X]] end")
    assert text.startswith("Bold and italic b c. small site")
    assert "Heading\nitem\nsub item" in text and text.endswith("end")
    assert not _markup_left(text)
    # an unclosed template is markup to the end; a trailing section ends the article
    assert strip_wiki_markup("kept {{cite|never closed") == "kept"
    assert strip_wiki_markup("body\n\n==References==\nSmith 2001") == "body"


def test_sample_dump_keeps_articles_only(tmp_path):
    plain = tmp_path / "dump.xml"
    plain.write_text(SAMPLE, encoding="utf-8")
    packed = tmp_path / "dump.xml.bz2"
    packed.write_bytes(bz2.compress(SAMPLE.encode()))
    articles = wikipedia_articles(packed)
    assert articles == wikipedia_articles(plain)
    assert len(articles) == 2  # no redirect, no project page, no empty stub
    alpha, gamma = articles
    assert alpha.startswith("Alpha is the first letter of the alphabet. It is old.")
    assert "History\nIt came from the Phoenicians." in alpha and "It was 1 letter." in alpha
    assert "Beta" not in alpha and "Letters" not in alpha and "uppercase" not in alpha
    assert not _markup_left(alpha) and gamma == "Gamma is third."


def test_unreadable_dump_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.xml.bz2"
    broken.write_bytes(bz2.compress(b"<mediawiki><page><title>x</title>"))
    with pytest.raises(ValueError, match="corpus: cannot read the MediaWiki dump"):
        wikipedia_articles(broken)
    not_bz2 = tmp_path / "plain.bz2"
    not_bz2.write_text("not compressed")
    with pytest.raises(ValueError, match="MediaWiki dump"):
        wikipedia_articles(not_bz2)


def test_the_named_wikipedia_corpus():
    documents = load_documents("wikipedia")
    assert "wikipedia" in NAMED_CORPORA
    # 206 pages: 100 redirects (one in the project namespace), 106 articles
    assert len(documents) == 106
    assert documents[0].startswith("Anarchism is a political philosophy")
    assert all(doc == doc.strip() and len(doc) > 300 for doc in documents)
    left = {doc[:30]: _markup_left(doc) for doc in documents if _markup_left(doc)}
    assert not left, left
    assert load_documents("wikipedia") == documents  # deterministic
    news = set(load_documents("lee_background"))
    assert not news & set(documents)
