"""read_json_object: the one reader of the project's JSON manifests."""

import pytest

from SAFNetSpineLib.errors import SpineInputError
from SAFNetSpineLib.json_files import read_json_object


def test_an_object_is_returned(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('{"active": "m-v1"}')
    assert read_json_object(path, "pointer") == {"active": "m-v1"}


@pytest.mark.parametrize(
    "text, message",
    [("[1, 2]", "pointer is not a JSON object"), ("{oops", "unreadable pointer"), ("null", "not a JSON object")],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "a.json"
    path.write_text(text)
    with pytest.raises(SpineInputError) as caught:
        read_json_object(path, "pointer")
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(SpineInputError, match="unreadable pointer"):
        read_json_object(tmp_path / "missing.json", "pointer")
