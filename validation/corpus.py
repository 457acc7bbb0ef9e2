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

DEFAULT_CORPUS = "lee_background"


def default_corpus_path() -> Path:
    """gensim's ``lee_background.cor`` (300 news articles, one per line), found without
    importing gensim."""
    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("corpus: the default corpus ships with gensim; install it "
                                "(`pip install gensim`) or name a text file or folder")
    path = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data" / \
        "lee_background.cor"
    if not path.is_file():
        raise FileNotFoundError(f"corpus: {path} is missing from the gensim install")
    return path


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
        ``"lee_background"`` (the default corpus, one document per line); a
        text file (documents separated by blank lines, or one per line when it
        has no blank line); or a folder (every ``*.txt`` file below it is one
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
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"corpus: {path} does not exist; expected a text file, a "
                                    f"folder of .txt files, or {DEFAULT_CORPUS!r}")
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
