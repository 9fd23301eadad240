"""The frames both servers are fed in the cscore comparison, and the time stamp drawn
into them.

A frame is a window of a texture twice as wide as the frame (scrolling 4 pixels a frame),
a block bouncing across it, and a time stamp in the top left corner: 40 blocks of 16x16
pixels, black for 0 and white for 1, least significant first: the low 32 bits of
CLOCK_MONOTONIC in microseconds when the frame is handed to the server, then an 8-bit
check (the four bytes XORed, XOR 0x5A). `examples/mjpeg_load.rs --latency barcode`
reads it back at 1/8 scale.

`examples/bench_pushed.rs` draws exactly the same frames in Rust from the same texture
file; the texture is made here, once, with a fixed seed:

    python3 bench/frames.py DIR WIDTH HEIGHT    # writes DIR/texture-WIDTHxHEIGHT.bgr
"""

import os
import sys
import time

import numpy as np

STAMP_BITS = 40
STAMP_BLOCK = 16
BLOCK_BGR = (200, 90, 235)


def texture_path(directory, width, height):
    return os.path.join(directory, f"texture-{width}x{height}.bgr")


def _value_noise(rng, width, height, cell):
    grid = rng.random((height // cell + 2, width // cell + 2))
    y = np.arange(height) / cell
    x = np.arange(width) / cell
    y0, x0 = y.astype(int), x.astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def make_texture(width, height):
    """A camera-like BGR picture, (height, 2 * width, 3): noise at two scales over colour
    gradients, plus a little sensor noise."""
    rng = np.random.default_rng(1181)
    w2 = 2 * width
    luma = 0.7 * _value_noise(rng, w2, height, 24) + 0.3 * _value_noise(rng, w2, height, 6)
    gx = np.linspace(0, 1, w2)[None, :]
    gy = np.linspace(0, 1, height)[:, None]
    b = 30 + 170 * luma + 40 * gx
    g = 20 + 190 * luma + 30 * gy
    r = 25 + 160 * luma + 50 * (1 - gx)
    picture = np.stack([b, g, r], axis=-1) + rng.normal(0, 2.0, (height, w2, 3))
    return np.clip(picture, 0, 255).astype(np.uint8)


def ensure_texture(directory, width, height):
    path = texture_path(directory, width, height)
    if not os.path.exists(path):
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(make_texture(width, height).tobytes())
        os.replace(tmp, path)
    return path


def load_texture(path, width, height):
    data = np.fromfile(path, dtype=np.uint8)
    return data.reshape(height, 2 * width, 3)


def bounce(t, span):
    phase = t % (2 * span)
    return phase if phase < span else 2 * span - phase


def stamp_check(stamp):
    b = stamp.to_bytes(4, "little")
    return b[0] ^ b[1] ^ b[2] ^ b[3] ^ 0x5A


def monotonic_us():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Frames:
    """Draws frame after frame into one reused BGR buffer."""

    def __init__(self, texture, width, height):
        self.texture, self.width, self.height = texture, width, height
        self.frame = np.empty((height, width, 3), dtype=np.uint8)
        self.bit_shifts = np.arange(STAMP_BITS, dtype=np.uint64)
        self.block = max(height // 6, 8)

    def draw(self, index):
        """Frame `index` without its stamp."""
        w, h, frame = self.width, self.height, self.frame
        shift = (index * 4) % w
        frame[:] = self.texture[:, shift:shift + w]
        b = self.block
        x = bounce(index * 7, w - b)
        y = bounce(index * 7 * 3 // 5, h - b)
        frame[y:y + b, x:x + b] = BLOCK_BGR
        return frame

    def stamp(self):
        """Draws the time stamp (now) into the frame; returns the frame."""
        stamp = monotonic_us() & 0xFFFFFFFF
        value = np.uint64(stamp | stamp_check(stamp) << 32)
        bits = ((value >> self.bit_shifts) & np.uint64(1)).astype(np.uint8) * 255
        self.frame[:STAMP_BLOCK, :STAMP_BITS * STAMP_BLOCK] = np.repeat(bits, STAMP_BLOCK)[None, :, None]
        return self.frame


if __name__ == "__main__":
    print(ensure_texture(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
