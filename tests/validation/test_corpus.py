"""Corpus loading, the fit/evaluation split, and token windows."""

from __future__ import annotations

import pytest

from rdgap.validation.corpus import (load_documents, split_documents, token_windows)


def test_default_corpus_is_the_lee_news():
    documents = load_documents()
    assert len(documents) == 300
    assert all(doc.strip() == doc and doc for doc in documents)


def test_text_file_with_blank_lines_and_one_per_line(tmp_path):
    blocks = tmp_path / "blocks.txt"
    blocks.write_text("first doc\nstill first\n\nsecond doc\n\n\nthird\n", encoding="utf-8")
    assert load_documents(blocks) == ["first doc\nstill first", "second doc", "third"]
    lines = tmp_path / "lines.txt"
    lines.write_text("a b c\nd e f\n", encoding="utf-8")
    assert load_documents(lines) == ["a b c", "d e f"]


def test_folder_of_text_files(tmp_path):
    (tmp_path / "b.txt").write_text("bee", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("ay", encoding="utf-8")
    (tmp_path / "ignored.md").write_text("no", encoding="utf-8")
    assert load_documents(tmp_path) == ["bee", "ay"]


def test_bad_corpora_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus: .* does not exist"):
        load_documents(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n", encoding="utf-8")
    with pytest.raises(ValueError, match="corpus: .* holds no text"):
        load_documents(empty)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00\x80abc")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_documents(binary)
    folder = tmp_path / "nothing"
    folder.mkdir()
    with pytest.raises(ValueError, match="no .txt files"):
        load_documents(folder)


def test_split_is_deterministic_disjoint_and_balanced():
    fit, evaluation = split_documents(300, fit_fraction=0.5, seed=0)
    assert split_documents(300, 0.5, 0) == (fit, evaluation)
    assert not set(fit) & set(evaluation) and sorted(fit + evaluation) == list(range(300))
    assert 120 < len(fit) < 180
    # A document's side does not depend on how many documents there are.
    fit_small, _ = split_documents(100, 0.5, 0)
    assert fit_small == [i for i in fit if i < 100]
    assert split_documents(300, 0.5, 1) != (fit, evaluation)
    with pytest.raises(ValueError, match="fit_fraction"):
        split_documents(10, 1.0)


class WordTokenizer:
    def __call__(self, text):
        return {"input_ids": [len(word) for word in text.split()]}


def test_windows_stay_inside_documents():
    documents = ["a " * 10, "b " * 3, "c " * 25]
    windows = token_windows(documents, [0, 1, 2], WordTokenizer(), length=4, per_document=2)
    assert windows.input_ids.shape == (4, 4)
    assert windows.document.tolist() == [0, 0, 2, 2]
    assert windows.skipped_documents == 1
    capped = token_windows(documents, [2, 0], WordTokenizer(), length=4, max_windows=1)
    assert capped.document.tolist() == [2]
    with pytest.raises(ValueError, match="length: no document"):
        token_windows(documents, [1], WordTokenizer(), length=4)
    with pytest.raises(ValueError, match="length"):
        token_windows(documents, [0], WordTokenizer(), length=1)


def test_named_newsgroups_corpus_is_posts_without_headers():
    from rdgap.validation.corpus import NAMED_CORPORA

    assert set(NAMED_CORPORA) == {"lee_background", "newsgroups", "wikipedia"}
    posts = load_documents("newsgroups")
    assert len(posts) == 200
    assert not any(post.startswith(("Newsgroups:", "Path:", "Xref:", "From:")) for post in posts)
    assert sum("space" in post.lower() for post in posts) > 20  # sci.space is half of it
    assert posts == load_documents("newsgroups")
    assert not set(posts) & set(load_documents("lee_background"))


def test_unknown_corpus_lists_the_named_ones(tmp_path):
    with pytest.raises(FileNotFoundError, match="newsgroups"):
        load_documents(tmp_path / "nope")
