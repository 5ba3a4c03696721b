/// A channels-last image with a zero border of `pad` pixels on every side and `slack` zero pixels
/// after the last padded row, so that the 3×3 conv can treat the whole padded image as one flat
/// run of pixels and read a little past the last row without leaving the buffer.
public struct PaddedImage {
    public let base: UnsafeMutablePointer<Float>
    public let height: Int, width: Int, channels: Int, pad: Int, slack: Int

    public init(base: UnsafeMutablePointer<Float>, height: Int, width: Int, channels: Int, pad: Int = 1, slack: Int = 2) {
        self.base = base
        self.height = height
        self.width = width
        self.channels = channels
        self.pad = pad
        self.slack = slack
    }

    /// Width of a padded row, in pixels.
    @inlinable public var paddedWidth: Int { width + 2 * pad }

    /// Floats the buffer needs.
    public static func floatCount(height: Int, width: Int, channels: Int, pad: Int = 1, slack: Int = 2) -> Int {
        ((height + 2 * pad) * (width + 2 * pad) + slack) * channels
    }

    /// Channel vector of interior pixel (y, x), 0-based in unpadded coordinates.
    @inlinable
    public func pixel(_ y: Int, _ x: Int) -> UnsafeMutablePointer<Float> {
        base + ((y + pad) * paddedWidth + x + pad) * channels
    }

    /// Zeroes the border and the slack (the interior is left as it is).
    public func zeroBorder() {
        let row = paddedWidth * channels
        let total = PaddedImage.floatCount(height: height, width: width, channels: channels, pad: pad, slack: slack)
        // Top rows, and the bottom rows together with the slack.
        base.update(repeating: 0, count: pad * row)
        let bottom = (pad + height) * row
        (base + bottom).update(repeating: 0, count: total - bottom)
        // Left and right borders of the interior rows (adjacent in memory: right of y, left of y+1).
        for y in 0..<height {
            let r = base + (pad + y) * row
            r.update(repeating: 0, count: pad * channels)
            (r + (pad + width) * channels).update(repeating: 0, count: pad * channels)
        }
    }
}
