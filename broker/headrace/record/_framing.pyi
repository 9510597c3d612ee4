"""Types of the C walk (_framing.c); see headrace.record.framing."""

def walk(
    batch: bytes | bytearray | memoryview, base_offset: int, /
) -> tuple[int, int, object] | tuple[int, int, int, bool, int]: ...
