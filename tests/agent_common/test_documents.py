"""Reading outside input: FIFOs and directories refused without blocking, bad text and JSON as one ValueError."""
import os
import threading

import pytest

from agent_common.documents import NotRegularFile, loads_json, read_bytes, read_text


def test_a_fifo_is_refused_at_once_instead_of_blocking(tmp_path):
    fifo = tmp_path / "meta.json"
    os.mkfifo(fifo)
    outcome = []

    def read():
        try:
            read_text(str(fifo))
        except OSError as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    # A plain open() would still be blocked waiting for a writer; this one has returned with an error.
    assert not reader.is_alive()
    assert isinstance(outcome[0], NotRegularFile)
    assert str(fifo) in str(outcome[0]) and "not a regular file" in str(outcome[0])


def test_a_directory_is_refused_as_such(tmp_path):
    with pytest.raises(IsADirectoryError):
        read_bytes(str(tmp_path))


def test_missing_is_none_and_regular_files_read_whole(tmp_path):
    assert read_text(str(tmp_path / "missing")) is None
    target = tmp_path / "f.json"
    target.write_bytes(b'{"a": "\xc3\xa9"}' + b" " * 100000)
    assert loads_json(read_text(str(target)), str(target)) == {"a": "\u00e9"}


def test_bytes_that_are_not_utf8_name_the_file_and_byte(tmp_path):
    target = tmp_path / "latin1.json"
    target.write_bytes(b'{"a": "caf\xe9"}')
    with pytest.raises(ValueError) as err:
        read_text(str(target))
    assert str(err.value) == "%s: not UTF-8 text (byte 10)" % target


def test_json_nested_beyond_the_stack_is_a_value_error():
    with pytest.raises(ValueError, match=r"^src: JSON nested too deeply$"):
        loads_json("[" * 100000 + "]" * 100000, "src")


def test_invalid_json_names_the_source_and_position():
    with pytest.raises(ValueError, match=r"^src: not valid JSON: Expecting value: line 1 column 7"):
        loads_json(b'{"a": }', "src")
