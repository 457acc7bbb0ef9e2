"""Evaluation text: documents, a deterministic fit/evaluation split, token windows.

Documents are the i.i.d. unit (THEORY.md, "Setting"): every window lies inside
one document, carries its document's index, and the fit and evaluation sets
never share a document.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .wikipedia import wikipedia_articles

DEFAULT_CORPUS = "lee_background"
#: Named text sources that ship with installed packages (gensim's test data), read
#: without importing the package: name → what the documents are.
NAMED_CORPORA = {
    "lee_background": "300 Australian news articles (gensim's lee_background.cor), "
                      "one per line",
    "newsgroups": "200 Usenet posts from alt.atheism and sci.space, 1993 (gensim's "
                  "mini_newsgroup sample of 20 Newsgroups), headers removed",
    "wikipedia": "106 English Wikipedia articles (gensim's shortened enwiki dump, 2016: "
                 "Anarchism to Achilles), wiki markup removed, one article per document",
}
#: gensim's shortened English Wikipedia dump (206 pages), the ``"wikipedia"`` corpus.
WIKIPEDIA_DUMP = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


def gensim_test_data(name: str) -> Path:
    """A file of gensim's bundled test data, found without importing gensim."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"corpus: {name!r} ships with gensim; install it "
                                f"(`pip install gensim`) or name a text file or folder")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / name
    if not path.is_file():
        raise FileNotFoundError(f"corpus: {path} is missing from the gensim install")
    return path


def default_corpus_path() -> Path:
    """gensim's ``lee_background.cor`` (300 news articles, one per line), found without
    importing gensim."""
    return gensim_test_data("lee_background.cor")


def newsgroup_posts(path: Path) -> list[str]:
    """The post bodies in gensim's ``mini_newsgroup`` (a zlib-compressed pickle of a
    scikit-learn ``Bunch``), read *without unpickling*: :func:`pickletools.genops`
    only parses the opcodes, so no code in the file runs; the posts are its
    unicode strings that carry a ``Subject:`` header. Headers (up to the first
    blank line) are dropped."""
    import pickletools
    import zlib

    try:
        raw = zlib.decompress(path.read_bytes())
        strings = [arg for op, arg, _ in pickletools.genops(raw)
                   if op.name == "UNICODE" and isinstance(arg, str)]
    except (zlib.error, ValueError, OSError) as error:
        raise ValueError(f"corpus: cannot read the newsgroup sample {path} ({error})") from None
    posts = [text.split("\n\n", 1) for text in strings if "Subject:" in text]
    return [parts[1].strip() for parts in posts if len(parts) == 2 and parts[1].strip()]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"corpus: {path} is not UTF-8 text ({error}); expected a UTF-8 "
                         f"text file") from None
    except OSError as error:
        raise ValueError(f"corpus: cannot read {path} ({error.strerror})") from None


def load_documents(source: str | os.PathLike = DEFAULT_CORPUS) -> list[str]:
    """The documents of a corpus.

    Parameters
    ----------
    source : str or path-like
        A name of :data:`NAMED_CORPORA` (``"lee_background"``, the default, one
        document per line; ``"newsgroups"``, one post per document; ``"wikipedia"``,
        one article per document, :func:`.wikipedia.wikipedia_articles`); a text file
        (documents separated by blank lines, or one per line when it has no
        blank line); or a folder (every ``*.txt`` file below it is one
        document, in sorted path order).

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ValueError
        If it is unreadable, not UTF-8, or holds no text.
    """
    if str(source) == DEFAULT_CORPUS:
        path = default_corpus_path()
        documents = [line.strip() for line in _read_text(path).splitlines()]
    elif str(source) == "newsgroups":
        path = gensim_test_data("mini_newsgroup")
        documents = newsgroup_posts(path)
    elif str(source) == "wikipedia":
        path = gensim_test_data(WIKIPEDIA_DUMP)
        documents = wikipedia_articles(path)
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"corpus: {path} does not exist; expected a text file, a "
                                    f"folder of .txt files, or one of {sorted(NAMED_CORPORA)}")
        if path.is_dir():
            files = sorted(path.rglob("*.txt"))
            if not files:
                raise ValueError(f"corpus: folder {path} holds no .txt files")
            documents = [_read_text(file).strip() for file in files]
        else:
            text = _read_text(path)
            blocks = [block.strip() for block in text.replace("\r\n", "\n").split("\n\n")]
            if len([b for b in blocks if b]) > 1:
                documents = blocks
            else:
                documents = [line.strip() for line in text.splitlines()]
    documents = [doc for doc in documents if doc]
    if not documents:
        raise ValueError(f"corpus: {path} holds no text; expected at least one non-empty "
                         f"document")
    return documents


def split_documents(count: int, fit_fraction: float = 0.5,
                    seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic fit / evaluation split of document indices.

    Each document goes to the fit set when a keyed hash of its index falls
    below ``fit_fraction``: the assignment of a document never depends on the
    platform, on the other documents, or on the order they are read.
    """
    if not 0.0 < fit_fraction < 1.0:
        raise ValueError(f"fit_fraction: expected a number in (0, 1), got {fit_fraction}")
    fit, evaluation = [], []
    for index in range(count):
        digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
        (fit if int.from_bytes(digest, "little") / 2 ** 64 < fit_fraction
         else evaluation).append(index)
    return fit, evaluation


@dataclass
class Windows:
    """Fixed-length token windows, each from one document.

    Attributes
    ----------
    input_ids : torch.Tensor
        ``(windows, length)`` token ids.
    document : torch.Tensor
        ``(windows,)`` index of the document each window comes from.
    skipped_documents : int
        Documents too short for one window.
    """

    input_ids: torch.Tensor
    document: torch.Tensor
    skipped_documents: int

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def token_windows(documents: list[str], indices: list[int], tokenizer, length: int,
                  max_windows: int | None = None, per_document: int = 1) -> Windows:
    """Cut up to ``per_document`` non-overlapping windows of ``length`` tokens from
    each listed document, in index order, stopping at ``max_windows``."""
    if length < 2:
        raise ValueError(f"length: expected ≥ 2 tokens per window, got {length}")
    if per_document < 1:
        raise ValueError(f"per_document: expected ≥ 1, got {per_document}")
    rows, owners, skipped = [], [], 0
    for index in indices:
        ids = tokenizer(documents[index])["input_ids"]
        count = min(per_document, len(ids) // length)
        if count == 0:
            skipped += 1
        for w in range(count):
            if max_windows is not None and len(rows) >= max_windows:
                break
            rows.append(ids[w * length:(w + 1) * length])
            owners.append(index)
        if max_windows is not None and len(rows) >= max_windows:
            break
    if not rows:
        raise ValueError(f"length: no document among the {len(indices)} given has {length} "
                         f"tokens; use shorter windows or longer documents")
    return Windows(input_ids=torch.tensor(rows, dtype=torch.long),
                   document=torch.tensor(owners, dtype=torch.long), skipped_documents=skipped)
