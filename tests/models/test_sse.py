"""The SSE reader on its own: byte boundaries anywhere, CRLF, comments, multi-line data, unterminated end."""

from chatapp.models.sse import sse_data


def test_events_survive_any_split_point_including_inside_multibyte_characters():
    stream = 'data: {"t": "héllo 日本語 🙂"}\n\ndata: [DONE]\n\n'.encode()
    for cut in range(1, len(stream)):
        assert list(sse_data([stream[:cut], stream[cut:]])) == ['{"t": "héllo 日本語 🙂"}', "[DONE]"]


def test_one_byte_at_a_time():
    stream = "data: ü\n\ndata: 🙂\n\n".encode()
    assert list(sse_data(bytes([b]) for b in stream)) == ["ü", "🙂"]


def test_crlf_comments_other_fields_and_multiline_data():
    stream = b": keep-alive\r\nevent: message\r\nid: 7\r\ndata: a\r\ndata: b\r\n\r\ndata:c\r\n\r\n"
    assert list(sse_data([stream])) == ["a\nb", "c"]


def test_last_event_without_blank_line_is_still_delivered():
    assert list(sse_data([b"data: x\n\ndata: [DONE]"])) == ["x", "[DONE]"]
    assert list(sse_data([b"data: x\n\ndata: y\n"])) == ["x", "y"]


def test_invalid_utf8_becomes_replacement_character_not_an_exception():
    assert list(sse_data([b"data: \xff\xfe ok\n\n"])) == ["\ufffd\ufffd ok"]
