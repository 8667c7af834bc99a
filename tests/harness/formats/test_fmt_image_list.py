"""Image lists (``PATH [IDENTITY]`` per line): separators, comments, and one-line errors."""

from __future__ import annotations

import pytest

from harness.errors import DataError
from harness.formats.image_list import MAX_LINE, ListedImage, read_image_list


def test_paths_identities_and_comments(tmp_path):
    f = tmp_path / "list.txt"
    f.write_text("# gallery\n\na/1.jpg\tAlice\nb/2.jpg Bob\nmy photos/c 3.jpg\tCarol Ann\nd.jpg\n  e.jpg  Eve  \n")
    assert read_image_list(f) == [
        ListedImage("a/1.jpg", "Alice", 3), ListedImage("b/2.jpg", "Bob", 4),
        ListedImage("my photos/c 3.jpg", "Carol Ann", 5),  # a tab: everything before the last tab is the path
        ListedImage("d.jpg", None, 6), ListedImage("e.jpg", "Eve", 7),
    ]


@pytest.mark.parametrize("content, match", [
    (b"# only a comment\n\n", "lists no image"),
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b"x" * (MAX_LINE + 1) + b" id\n", r"list.txt:1: line of"),
])
def test_bad_lists_are_one_line_errors(tmp_path, content, match):
    f = tmp_path / "list.txt"
    f.write_bytes(content)
    with pytest.raises(DataError, match=match) as err:
        read_image_list(f)
    assert "\n" not in str(err.value)


def test_missing_list(tmp_path):
    with pytest.raises(DataError, match="cannot read the image list"):
        read_image_list(tmp_path / "nope.txt")
