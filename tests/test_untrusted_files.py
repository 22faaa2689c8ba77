"""Files sda reads that anyone may have written: JSON and TOML are bounded in size and nesting
before they are parsed, so a small forged file is a one-line error, never a RecursionError."""

import pytest
from forgery import put_together

from sda.persistence import ModelFileError, load_model
from sda.sweep_config import MAX_SWEEP_BYTES, SweepConfigError, parse_sweep, read_sweep, toml_depth
from sda.utils import MAX_JSON_DEPTH, parse_json, read_json, read_json_lines

DEEP = 100_000


@pytest.mark.parametrize("text", ["a = " + "[" * DEEP + "]" * DEEP,
                                  "a = " + "{b = " * DEEP + "1" + "}" * DEEP,
                                  "a = " + "[" * DEEP])
def test_a_sweep_file_nested_deeply_is_refused_before_parsing(text, tmp_path):
    with pytest.raises(SweepConfigError, match="nests arrays or tables"):
        parse_sweep(text)
    (tmp_path / "deep.toml").write_text(text)
    with pytest.raises(SweepConfigError, match="deep.toml nests"):
        read_sweep(tmp_path / "deep.toml")


@pytest.mark.parametrize("text", ["a" + ".a" * DEEP + " = 1", "[a" + ".a" * DEEP + "]"])
def test_a_sweep_file_with_a_dotted_key_of_many_parts_is_refused_before_parsing(text):
    with pytest.raises(SweepConfigError, match="has a line of"):
        parse_sweep(text)


def test_brackets_in_strings_comments_and_table_headers_do_not_count():
    text = ('[config]\n# [[[[[[[[\nname = "[[[[\\"[[[["\nother = \'[[[[[[\'\nlong = """[[[[\n[[[["""\n'
            'x = [[1, 2], [3]]\n[[variants]]\n')
    assert toml_depth(text) == 2


def test_a_huge_sweep_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.toml"
    with open(path, "wb") as f:
        f.truncate(MAX_SWEEP_BYTES + 1)
    with pytest.raises(SweepConfigError, match="more than a sweep file may"):
        read_sweep(path)


@pytest.mark.parametrize("text", ["[" * DEEP + "]" * DEEP, '{"a": ' * DEEP + "1" + "}" * DEEP, "[" * DEEP])
def test_json_nested_deeply_is_refused_before_parsing(text, tmp_path):
    with pytest.raises(ValueError, match="nested"):
        parse_json(text, "x")
    (tmp_path / "deep.json").write_text(text)
    with pytest.raises(ValueError, match="deep.json"):
        read_json(tmp_path / "deep.json")
    (tmp_path / "deep.jsonl").write_text('{"a": 1}\n' + text + "\n")
    with pytest.raises(ValueError, match="line 2"):
        read_json_lines(tmp_path / "deep.jsonl")


def test_json_within_the_bounds_reads_as_json_does(tmp_path):
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json(nested, "x") is not None
    assert parse_json('{"s": "[[[[' + "[" * 200 + '", "n": [1, 2.5, null]}', "x")["n"] == [1, 2.5, None]
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_json("garbage{", "x")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_json("1" * 5000, "x")  # beyond Python's digit limit for int()
    path = tmp_path / "big.json"
    with open(path, "wb") as f:
        f.truncate(1000)
    with pytest.raises(ValueError, match="more than the 10"):
        read_json(path, max_bytes=10)


@pytest.mark.parametrize("where", ["header", "metadata"])
@pytest.mark.parametrize("text", ["[" * DEEP + "]" * DEEP, '{"a": ' * DEEP + "1" + "}" * DEEP, "[" * DEEP])
def test_a_model_file_whose_json_nests_deeply_is_refused_before_parsing(text, where, tmp_path):
    """Both JSON texts of a safetensors model file: its header, and the sda header in its metadata."""
    path = tmp_path / "deep.safetensors"
    path.write_bytes(put_together({}, header_text=text) if where == "header" else
                     put_together({}, metadata={"sda": text}))
    with pytest.raises(ModelFileError, match=f"deep.safetensors: .*{where}.*JSON nested") as refused:
        load_model(path)
    assert "\n" not in str(refused.value)
