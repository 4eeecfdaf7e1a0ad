"""Where a bar may lie in an image: the arithmetic the data's generator draws by and the
config's check refuses by, apart from the generator so that checking a config needs no torch.
"""

from __future__ import annotations


def centred_start(image_size: int, extent: int) -> int:
    """First pixel of a bar of `extent` pixels centred in the image (rounding towards 0)."""
    return (image_size - extent) // 2


def max_offset(image_size: int, line_length: int, line_width: int) -> int:
    """The largest shift each way that keeps a centred bar inside the image along both axes."""
    room = []
    for extent in (line_length, line_width):
        start = centred_start(image_size, extent)
        room += [start, image_size - extent - start]
    return max(0, min(room))
