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
    with pytest.raises(SweepConfigError, match="more than the 1048576 bytes of any sweep file|more than the 1048576 of any sweep file"):
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


# what a reader is given in place of a file: each refused at once, in one line, without reading it
_READ_UNBOUNDED = """
import sys
from sda.sweep_config import read_sweep
from sda.utils import read_json, read_json_lines
for read in (read_json, read_json_lines, read_sweep):
    try:
        read(sys.argv[1])
    except ValueError as exc:
        print(" ".join(str(exc).split()))
"""


def _read_in_a_small_process(path) -> list[str]:
    """The one-line refusals of the three readers, run where a reader that did read a device
    whole would run out of its 1 GiB instead of the machine's memory, or a FIFO time out."""
    import os
    import subprocess
    import sys

    def limit_memory():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    done = subprocess.run([sys.executable, "-c", _READ_UNBOUNDED, str(path)], capture_output=True, text=True,
                          timeout=60, preexec_fn=limit_memory if os.name == "posix" else None)
    assert done.returncode == 0 and not done.stderr, done.stderr[-2000:]
    return done.stdout.splitlines()


@pytest.mark.skipif(not __import__("os").path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_that_never_ends_is_refused_unread():
    lines = _read_in_a_small_process("/dev/zero")
    assert len(lines) == 3 and all("/dev/zero: not a regular file" in line for line in lines), lines


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    import os
    os.mkfifo(tmp_path / "sweep.toml")
    lines = _read_in_a_small_process(tmp_path / "sweep.toml")
    assert len(lines) == 3 and all("not a regular file" in line for line in lines), lines


def test_a_folder_given_as_a_file_is_one_line(tmp_path):
    for read in (read_json, read_json_lines):
        with pytest.raises(ValueError, match="not a regular file"):
            read(tmp_path)
    with pytest.raises(SweepConfigError, match="not a regular file"):
        read_sweep(tmp_path)


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/maps"), reason="needs Linux's /proc")
def test_a_file_larger_than_it_says_is_read_no_further_than_the_bound():
    # /proc's files are regular files of size 0 that hold kilobytes
    with pytest.raises(ValueError, match="more than the 10 bytes"):
        read_json("/proc/self/maps", max_bytes=10)


@pytest.mark.parametrize("text, key", [('{"test_error": 0.5, "test_error": 0.01}', "test_error"),
                                       ('[{"a": {"b": 1, "c": 2, "b": 3}}]', "b")])
def test_json_naming_a_key_twice_is_refused(text, key):
    with pytest.raises(ValueError, match=f"holds the key '{key}' twice"):
        parse_json(text, "x")
    assert parse_json('{"a": {"b": 1}, "b": {"a": 2}}', "x") == {"a": {"b": 1}, "b": {"a": 2}}


def test_a_sweep_file_with_a_byte_order_mark_reads_as_without(tmp_path):
    (tmp_path / "bom.toml").write_bytes(b'\xef\xbb\xbfpreset = "quick"\n')
    assert read_sweep(tmp_path / "bom.toml").preset == "quick"
    (tmp_path / "latin.toml").write_bytes(b'preset = "qu\xe9ck"\n')
    with pytest.raises(SweepConfigError, match="not UTF-8 text"):
        read_sweep(tmp_path / "latin.toml")


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
