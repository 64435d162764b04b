from gateway.providers.sse import SSEEvent, SSEParser

STREAM = b'event: a\ndata: {"x":1}\n\n: comment\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n'


def test_parses_events_fields_and_comments() -> None:
    events = SSEParser().feed(STREAM)
    assert events == [
        SSEEvent("a", b'{"x":1}'),
        SSEEvent(None, b"line1\nline2"),
        SSEEvent(None, b"[DONE]"),
    ]


def test_same_events_for_every_split_point() -> None:
    expected = SSEParser().feed(STREAM)
    for cut in range(1, len(STREAM)):
        parser = SSEParser()
        got = parser.feed(STREAM[:cut]) + parser.feed(STREAM[cut:]) + parser.close()
        assert got == expected, cut


def test_crlf_and_split_crlf() -> None:
    data = STREAM.replace(b"\n", b"\r\n")
    expected = SSEParser().feed(STREAM)
    for cut in range(1, len(data)):
        parser = SSEParser()
        assert parser.feed(data[:cut]) + parser.feed(data[cut:]) + parser.close() == expected


def test_close_flushes_an_unterminated_event() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: tail") == []
    assert parser.close() == [SSEEvent(None, b"tail")]
