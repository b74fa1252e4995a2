/// A 5 × 7 bitmap font for printable ASCII (0x20 … 0x7E), for captions, legends and axis
/// labels drawn into PNGs without a font library. Each glyph is 7 rows of 5 pixels, top row
/// first; a row's bit 4 is its leftmost pixel. Characters are laid out in 6 × 9 cells (one
/// column and two rows of spacing) and scaled by whole pixels.
public enum BitmapFont {
    /// Cell width and height in unscaled pixels.
    public static let cellWidth = 6, cellHeight = 9
    /// Glyph width and height in unscaled pixels.
    public static let glyphWidth = 5, glyphHeight = 7

    /// Glyph rows packed 8 bits each, row 0 in the most significant used byte (7 bytes);
    /// index = character code − 0x20.
    private static let glyphs: [UInt64] = [
        0x00000000000000, // space
        0x04040404040004, // !
        0x0A0A0A00000000, // "
        0x0A0A1F0A1F0A0A, // #
        0x040F140E051E04, // $
        0x18190204081303, // %
        0x0C12140815120D, // &
        0x0C040800000000, // '
        0x02040808080402, // (
        0x08040202020408, // )
        0x0004150E150400, // *
        0x0004041F040400, // +
        0x000000000C0408, // ,
        0x0000001F000000, // -
        0x00000000000C0C, // .
        0x00010204081000, // /
        0x0E11131519110E, // 0
        0x040C040404040E, // 1
        0x0E11010204081F, // 2
        0x1F02040201110E, // 3
        0x02060A121F0202, // 4
        0x1F101E0101110E, // 5
        0x0608101E11110E, // 6
        0x1F010204080808, // 7
        0x0E11110E11110E, // 8
        0x0E11110F01020C, // 9
        0x000C0C000C0C00, // :
        0x000C0C000C0408, // ;
        0x02040810080402, // <
        0x00001F001F0000, // =
        0x08040201020408, // >
        0x0E110102040004, // ?
        0x0E11010D15150E, // @
        0x0E1111111F1111, // A
        0x1E11111E11111E, // B
        0x0E11101010110E, // C
        0x1C12111111121C, // D
        0x1F10101E10101F, // E
        0x1F10101E101010, // F
        0x0E11101711110F, // G
        0x1111111F111111, // H
        0x0E04040404040E, // I
        0x0702020202120C, // J
        0x11121418141211, // K
        0x1010101010101F, // L
        0x111B1515111111, // M
        0x11111915131111, // N
        0x0E11111111110E, // O
        0x1E11111E101010, // P
        0x0E11111115120D, // Q
        0x1E11111E141211, // R
        0x0F10100E01011E, // S
        0x1F040404040404, // T
        0x1111111111110E, // U
        0x11111111110A04, // V
        0x1111111515150A, // W
        0x11110A040A1111, // X
        0x1111110A040404, // Y
        0x1F01020408101F, // Z
        0x0E08080808080E, // [
        0x00100804020100, // \
        0x0E02020202020E, // ]
        0x040A1100000000, // ^
        0x0000000000001F, // _
        0x08040200000000, // `
        0x00000E010F110F, // a
        0x1010161911111E, // b
        0x00000E1010110E, // c
        0x01010D1311110F, // d
        0x00000E111F100E, // e
        0x0609081C080808, // f
        0x000F11110F010E, // g
        0x10101619111111, // h
        0x04000C0404040E, // i
        0x0200060202120C, // j
        0x10101214181412, // k
        0x0C04040404040E, // l
        0x00001A15151111, // m
        0x00001619111111, // n
        0x00000E1111110E, // o
        0x00001E111E1010, // p
        0x00000D130F0101, // q
        0x00001619101010, // r
        0x00000E100E011E, // s
        0x08081C08080906, // t
        0x0000111111130D, // u
        0x00001111110A04, // v
        0x0000111115150A, // w
        0x0000110A040A11, // x
        0x000011110F010E, // y
        0x00001F0204081F, // z
        0x02040408040402, // {
        0x04040404040404, // |
        0x08040402040408, // }
        0x00000815020000, // ~
    ]

    /// Whether pixel (column, row) of `character`'s glyph is set; characters outside printable
    /// ASCII are drawn as '?'.
    public static func isSet(_ character: Character, column: Int, row: Int) -> Bool {
        guard (0..<glyphWidth).contains(column), (0..<glyphHeight).contains(row) else { return false }
        let code = character.asciiValue.flatMap { (0x20...0x7E).contains($0) ? Int($0) : nil } ?? 0x3F
        let bits = glyphs[code - 0x20] >> UInt64(8 * (glyphHeight - 1 - row))
        return bits & (1 << UInt64(glyphWidth - 1 - column)) != 0
    }

    /// Width in pixels of `text` at `scale` (no trailing spacing column).
    public static func width(of text: String, scale: Int) -> Int {
        text.isEmpty ? 0 : (text.count * cellWidth - 1) * scale
    }
}
