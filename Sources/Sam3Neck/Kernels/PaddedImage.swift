/// A channels-last image stored inside a larger zero frame: `pad` zero pixels above and to the
/// left, at least `pad` below and to the right (more when the 3×3 conv's Winograd tiles need the
/// grid rounded up to a multiple of 12), and `slack` zero pixels after the last row, so the direct
/// 3×3 conv can treat the whole buffer as one flat run of pixels and read a little past the end.
package struct PaddedImage {
    package let base: UnsafeMutablePointer<Float>
    package let height: Int, width: Int, channels: Int, pad: Int
    /// Stored rows and columns, frame included.
    package let paddedHeight: Int, paddedWidth: Int
    package let slack: Int

    package init(base: UnsafeMutablePointer<Float>, height: Int, width: Int, channels: Int, pad: Int = 1) {
        let dims = PaddedImage.dimensions(height: height, width: width, pad: pad)
        self.base = base
        self.height = height
        self.width = width
        self.channels = channels
        self.pad = pad
        paddedHeight = dims.h
        paddedWidth = dims.w
        slack = dims.slack
    }

    /// The frame a conv input needs: pad 1, the grid rounded up to whole tiles of every side the
    /// plan's Winograd tiles have (2, 3 and 4: a multiple of 12; SAM 3's grids already are), 2 slack
    /// pixels. With pad 0 the image is stored bare.
    static func dimensions(height: Int, width: Int, pad: Int) -> (h: Int, w: Int, slack: Int) {
        guard pad > 0 else { return (height, width, 0) }
        func rounded(_ n: Int) -> Int { (n + 11) / 12 * 12 + 2 * pad }
        return (rounded(height), rounded(width), 2)
    }

    /// Floats the buffer needs.
    package static func floatCount(height: Int, width: Int, channels: Int, pad: Int = 1) -> Int {
        let d = dimensions(height: height, width: width, pad: pad)
        return (d.h * d.w + d.slack) * channels
    }

    package var floatCount: Int { (paddedHeight * paddedWidth + slack) * channels }

    /// Channel vector of interior pixel (y, x), 0-based in unpadded coordinates.
    @inlinable
    package func pixel(_ y: Int, _ x: Int) -> UnsafeMutablePointer<Float> {
        base + ((y + pad) * paddedWidth + x + pad) * channels
    }

    /// Pointer to stored pixel (row, column) of the frame, 0-based in padded coordinates.
    @inlinable
    package func stored(_ row: Int, _ column: Int) -> UnsafeMutablePointer<Float> {
        base + (row * paddedWidth + column) * channels
    }

    /// The same image seen through a buffer that holds only stored rows `first ..< first + count`
    /// (`count · paddedWidth · channels` floats at `band`): pixels keep their image coordinates,
    /// and only those rows may be touched.
    package func band(_ band: UnsafeMutablePointer<Float>, firstStoredRow first: Int) -> PaddedImage {
        PaddedImage(
            base: band - first * paddedWidth * channels, height: height, width: width, channels: channels, pad: pad)
    }

    /// Zeroes the frame within stored rows `rows` (a band's): the left and right frame columns,
    /// and whole rows above or below the image.
    package func zeroBorder(storedRows rows: Range<Int>) {
        let row = paddedWidth * channels
        let left = pad * channels, right = (paddedWidth - pad - width) * channels
        for r in rows {
            let p = base + r * row
            if r < pad || r >= pad + height {
                p.update(repeating: 0, count: row)
            } else {
                p.update(repeating: 0, count: left)
                (p + (pad + width) * channels).update(repeating: 0, count: right)
            }
        }
    }

    /// Zeroes everything outside the interior (the interior is left as it is).
    package func zeroBorder() {
        guard pad > 0 else { return }
        let row = paddedWidth * channels
        base.update(repeating: 0, count: pad * row)
        let bottom = (pad + height) * row
        (base + bottom).update(repeating: 0, count: floatCount - bottom)
        // Right frame of row y and left frame of row y+1 are adjacent in memory.
        let left = pad * channels, right = (paddedWidth - pad - width) * channels
        for y in 0..<height {
            let r = base + (pad + y) * row
            r.update(repeating: 0, count: left)
            (r + (pad + width) * channels).update(repeating: 0, count: right)
        }
    }
}
